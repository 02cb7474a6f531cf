// `nanochat serve`: a checkpoint behind HTTP, as nanochat's chat_web. GET / is the chat page
// (Sources/nanochat/chat.html, compiled in); POST /v1/chat/completions and /v1/completions
// speak OpenAI's API (whole replies or server-sent events); GET /health and /v1/models tell
// what runs. Requests are decoded together by one ChatEngine (continuous batching).
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train
import Tokenizer
import Inference
import Serve

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model: a chat page and an OpenAI-compatible API, requests decoded together.",
        discussion: """
        Open http://HOST:PORT/ for the chat page. Any OpenAI client works against
        http://HOST:PORT/v1 (POST /v1/chat/completions, /v1/completions, with "stream": true for
        server-sent events; max_tokens, temperature, top_p, top_k, stop, seed). Up to --slots
        requests decode together; more wait for a slot. Stop with Ctrl-C.

        On loopback (the default) only requests naming localhost are answered; pages of other
        web origins are refused unless --allow-origin names them. Listening on another address
        (--host 0.0.0.0), give an --api-key (or $NANOCHAT_API_KEY) so only your clients use it.
        Clients that stall (a header or body not sent within --client-timeout) are cut off,
        and a client that closes its connection stops its generation.
        """
    )

    @Option(help: "Checkpoint directory (a chat fine-tuned one, from `nanochat sft`, for the chat page).") var checkpoint: String
    @Option(help: "Checkpoint step (default: the latest).") var step: Int?
    @Option(help: "Tokenizer directory (default: the checkpoint's tokenizer/).") var tokenizer: String?
    @Option(help: "Address to listen on (0.0.0.0 for every interface).") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8000
    @Option(help: "Requests decoded together; more wait for a free slot.") var slots = 16
    @Option(help: "Largest max_tokens a request may ask for, and the default.") var maxTokens = 512
    @Option(help: "Most messages in one chat request.") var maxMessages = APILimits.defaultMaxMessages
    @Option(help: "Largest request body, in bytes.") var maxBodyBytes = APILimits.defaultMaxBodyBytes
    @Option(help: "Most requests waiting for a slot; more are refused (429) until some finish.") var maxWaiting = 256
    @Option(help: "Seed of the sampling of requests that give none.") var seed: UInt64 = 42
    @Option(help: "Seconds a client has to send a whole request, and that an idle connection stays open.") var clientTimeout = AccessPolicy.defaultClientTimeout
    @Option(help: "Open connections at most; more wait until some close.") var maxConnections = AccessPolicy.defaultMaxConnections
    @Option(help: ArgumentHelp("The key clients must send as `Authorization: Bearer KEY` on /v1/ (default: $NANOCHAT_API_KEY; none if unset).",
                               valueName: "key")) var apiKey: String?
    @Option(help: ArgumentHelp("A web origin whose pages may call the API (`https://app.example`; `*` for any); repeat for more. Pages of other origins are refused.",
                               valueName: "origin")) var allowOrigin: [String] = []
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be in 1...65535, got \(port)") }
        guard (1...1024).contains(slots) else { throw ValidationError("--slots must be in 1...1024, got \(slots)") }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be ≥ 1, got \(maxTokens)") }
        guard maxMessages >= 1 else { throw ValidationError("--max-messages must be ≥ 1, got \(maxMessages)") }
        guard maxWaiting >= 0 else { throw ValidationError("--max-waiting must be ≥ 0, got \(maxWaiting)") }
        guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be ≥ 1024, got \(maxBodyBytes)") }
        guard clientTimeout.isFinite, clientTimeout >= 0.1, clientTimeout <= 3600 else {
            throw ValidationError("--client-timeout must be in 0.1...3600 seconds, got \(clientTimeout)")
        }
        guard (1...1_000_000).contains(maxConnections) else { throw ValidationError("--max-connections must be in 1...1000000, got \(maxConnections)") }
        if let key = apiKey, key.isEmpty || key.contains(where: { $0.isWhitespace }) {
            throw ValidationError("--api-key must be a non-empty word without spaces")
        }
        for origin in allowOrigin where origin != "*" && !(origin.hasPrefix("http://") || origin.hasPrefix("https://")) || origin.hasSuffix("/") {
            throw ValidationError("--allow-origin takes an origin such as https://app.example (scheme and host, no path), or *; got \"\(origin)\"")
        }
    }

    func run() throws {
        runOptions.apply()
        let (model, loadedStep) = try Checkpoint.load(from: checkpoint, step: step)
        precision.apply(to: model, inference: true)
        let tok = try CheckpointTokenizer.forText(model: model, checkpoint: checkpoint, step: loadedStep, given: tokenizer)
        let engine = ChatEngine(model: model, tokenizer: tok, slots: slots)
        let name = URL(fileURLWithPath: checkpoint).standardizedFileURL.lastPathComponent + "-\(loadedStep)"
        let key = apiKey ?? ProcessInfo.processInfo.environment["NANOCHAT_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        let connections = try FileDescriptorLimit.raise(toServe: maxConnections)
        let access = AccessPolicy(clientTimeout: clientTimeout, maxConnections: connections, apiKey: key,
                                  allowedOrigins: allowOrigin, loopbackOnly: AccessPolicy.isLoopback(host))
        let server = APIServer(engine: engine, model: name, seed: seed, maxWaiting: maxWaiting,
                               limits: APILimits(context: model.config.sequenceLen, maxTokens: maxTokens,
                                                 maxMessages: maxMessages, maxBodyBytes: maxBodyBytes),
                               access: access)
        engine.start()
        defer { engine.stop() }
        let banner = "nanochat serve: \(checkpoint) step \(loadedStep) at http://\(host):\(port)/ "
            + "(\(slots) slots, context \(model.config.sequenceLen) tokens, \(connections) connections"
            + (key == nil ? "" : ", API key required") + ")\n"
        do {
            try server.run(host: host, port: port) { FileHandle.standardOutput.write(Data(banner.utf8)) }
        } catch {
            throw UserError("serving on \(host):\(port) failed: \(error)")
        }
    }
}

/// The process's open-file limit, raised so the server's connections fit.
enum FileDescriptorLimit {
    /// Files kept for the process's own use (checkpoint, logs, libraries' descriptors).
    static let reserve = 64

    /// Raises the soft limit up to the hard one so `wanted` connections fit; the connections
    /// that fit, or an error when not even a few do.
    static func raise(toServe wanted: Int) throws -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return wanted }
        let need = rlim_t(wanted + reserve)
        if limit.rlim_cur < need {
            var raised = limit
            raised.rlim_cur = min(need, limit.rlim_max)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let fit = Int(clamping: limit.rlim_cur) - reserve
        guard fit >= 16 else {
            throw UserError("the open-file limit (\(limit.rlim_cur), ulimit -n) leaves room for \(max(fit, 0)) connections; raise it or lower --max-connections")
        }
        if fit < wanted {
            FileHandle.standardError.write(Data("nanochat serve: the open-file limit (\(limit.rlim_cur), ulimit -n) allows \(fit) connections, not the \(wanted) asked for\n".utf8))
        }
        return min(fit, wanted)
    }
}
