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
        """
    )

    @Option(help: "Checkpoint directory (a chat fine-tuned one, from `nanochat sft`, for the chat page).") var checkpoint: String
    @Option(help: "Checkpoint step (default: the latest).") var step: Int?
    @Option(help: "Tokenizer directory (default: the checkpoint's tokenizer/).") var tokenizer: String?
    @Option(help: "Address to listen on (0.0.0.0 for every interface).") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8000
    @Option(help: "Requests decoded together; more wait for a free slot.") var slots = 16
    @Option(help: "Largest max_tokens a request may ask for, and the default.") var maxTokens = 512
    @Option(help: "Most messages in one chat request.") var maxMessages = 256
    @Option(help: "Largest request body, in bytes.") var maxBodyBytes = 1 << 20
    @Option(help: "Most requests waiting for a slot; more are refused (429) until some finish.") var maxWaiting = 256
    @Option(help: "Seed of the sampling of requests that give none.") var seed: UInt64 = 42
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be in 1...65535, got \(port)") }
        guard (1...1024).contains(slots) else { throw ValidationError("--slots must be in 1...1024, got \(slots)") }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be ≥ 1, got \(maxTokens)") }
        guard maxMessages >= 1 else { throw ValidationError("--max-messages must be ≥ 1, got \(maxMessages)") }
        guard maxWaiting >= 0 else { throw ValidationError("--max-waiting must be ≥ 0, got \(maxWaiting)") }
        guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be ≥ 1024, got \(maxBodyBytes)") }
    }

    func run() throws {
        runOptions.apply()
        let (model, loadedStep) = try Checkpoint.load(from: checkpoint, step: step)
        precision.apply(to: model, inference: true)
        let tok = try CheckpointTokenizer.forText(model: model, checkpoint: checkpoint, step: loadedStep, given: tokenizer)
        let engine = ChatEngine(model: model, tokenizer: tok, slots: slots)
        let name = URL(fileURLWithPath: checkpoint).standardizedFileURL.lastPathComponent + "-\(loadedStep)"
        let server = APIServer(engine: engine, model: name, seed: seed, maxWaiting: maxWaiting,
                               limits: APILimits(context: model.config.sequenceLen, maxTokens: maxTokens,
                                                 maxMessages: maxMessages, maxBodyBytes: maxBodyBytes))
        engine.start()
        defer { engine.stop() }
        let banner = "nanochat serve: \(checkpoint) step \(loadedStep) at http://\(host):\(port)/ "
            + "(\(slots) slots, context \(model.config.sequenceLen) tokens)\n"
        do {
            try server.run(host: host, port: port) { FileHandle.standardOutput.write(Data(banner.utf8)) }
        } catch {
            throw UserError("serving on \(host):\(port) failed: \(error)")
        }
    }
}
