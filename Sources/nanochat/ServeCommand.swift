// `nanochat serve`: a checkpoint behind HTTP, as nanochat's chat_web. GET / is the chat page
// (Sources/nanochat/chat.html, compiled in); POST /v1/chat/completions and /v1/completions
// speak OpenAI's API (whole replies or server-sent events); GET /health and /v1/models tell
// what runs. Requests are decoded together by one ChatEngine (continuous batching).
import ArgumentParser
import Blocks
import Foundation
import Hummingbird
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
        let (model, loadedStep) = try loadCheckpoint(checkpoint, step: step)
        precision.apply(to: model, inference: true)
        let tok = try textTokenizer(for: model, checkpoint: checkpoint, step: loadedStep, given: tokenizer)
        let engine = ChatEngine(model: model, tokenizer: tok, slots: slots)
        let name = URL(fileURLWithPath: checkpoint).standardizedFileURL.lastPathComponent + "-\(loadedStep)"
        let server = APIServer(engine: engine, model: name, seed: seed, maxWaiting: maxWaiting,
                               limits: APILimits(context: model.config.sequenceLen, maxTokens: maxTokens,
                                                 maxMessages: maxMessages, maxBodyBytes: maxBodyBytes))
        engine.start()
        let banner = "nanochat serve: \(checkpoint) step \(loadedStep) at http://\(host):\(port)/ "
            + "(\(slots) slots, context \(model.config.sequenceLen) tokens)\n"
        let app = Application(router: server.router(),
                              configuration: .init(address: .hostname(host, port: port), serverName: "nanochat"),
                              onServerRunning: { _ in FileHandle.standardOutput.write(Data(banner.utf8)) })
        let outcome = Outcome()
        let finished = DispatchSemaphore(value: 0)
        Task {
            do { try await app.runService() } catch { outcome.set(error) }
            finished.signal()
        }
        finished.wait()
        engine.stop()
        if let error = outcome.error { throw UserError("serving on \(host):\(port) failed: \(error)") }
    }
}

/// How the server task ended, handed back to the waiting thread.
private final class Outcome: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: (any Error)?
    func set(_ e: any Error) { lock.withLock { stored = e } }
    var error: (any Error)? { lock.withLock { stored } }
}

/// The routes and what they answer.
struct APIServer: Sendable {
    let engine: ChatEngine
    let model: String
    let seed: UInt64
    let maxWaiting: Int
    let limits: APILimits
    private let counter = RequestCounter()

    init(engine: ChatEngine, model: String, seed: UInt64, maxWaiting: Int, limits: APILimits) {
        self.engine = engine; self.model = model; self.seed = seed; self.maxWaiting = maxWaiting; self.limits = limits
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.chat_html)))
        }
        router.get("/favicon.ico") { _, _ in Response(status: .noContent) }
        router.get("/health") { _, _ in
            let s = engine.status
            return jsonResponse(.ok, OpenAIAPI.jsonData(["status": "ok", "model": model, "running": s.running, "waiting": s.waiting,
                                                         "slots": s.slots, "steps": s.steps, "generated_tokens": s.generated,
                                                         "context": limits.context, "max_tokens": limits.maxTokens]))
        }
        router.get("/v1/models") { _, _ in
            jsonResponse(.ok, OpenAIAPI.jsonData(["object": "list", "data": [["id": model, "object": "model", "created": 0, "owned_by": "nanochat"]]]))
        }
        router.post("/v1/chat/completions") { request, _ in await complete(request, chat: true) }
        router.post("/v1/completions") { request, _ in await complete(request, chat: false) }
        return router
    }

    func complete(_ request: Request, chat: Bool) async -> Response {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limits.maxBodyBytes)
        } catch {
            return errorResponse(APIError(status: 413, "the request body is larger than the \(limits.maxBodyBytes) bytes allowed"))
        }
        let api: APIRequest
        do {
            api = try OpenAIAPI.parse(Data(body.readableBytesView), chat: chat, tokenizer: engine.tokenizer, limits: limits,
                                      seed: seed &+ counter.next())
        } catch let error as APIError {
            return errorResponse(error)
        } catch {
            return errorResponse(APIError("the request could not be read: \(error)"))
        }
        let status = engine.status
        if status.running >= status.slots && status.waiting >= maxWaiting {
            return errorResponse(APIError(status: 429, "the server is busy: \(status.running) requests running and \(status.waiting) waiting; try again shortly",
                                          type: "rate_limit_error"))
        }
        let head = OpenAIAPI.ReplyHead(id: (chat ? "chatcmpl-" : "cmpl-") + String(counter.next(), radix: 16),
                                       created: Int(Date().timeIntervalSince1970), model: model, chat: chat)
        let (events, sink) = AsyncStream<GenerationEvent>.makeStream()
        let handle = engine.submit(api.generation) { event in
            sink.yield(event)
            if case .finished = event { sink.finish() }
        }
        sink.onTermination = { _ in handle.cancel() }

        if !api.stream {
            var text = "", finish = FinishReason.stop, usage = OpenAIAPI.Usage(prompt: 0, completion: 0)
            await withTaskCancellationHandler {
                for await event in events {
                    switch event {
                    case .text(let piece): text += piece
                    case .finished(let reason, let p, let c): finish = reason; usage = .init(prompt: p, completion: c)
                    }
                }
            } onCancel: { handle.cancel() }
            if finish == .cancelled {
                return errorResponse(APIError(status: 503, "the server stopped before the reply was done", type: "server_error"))
            }
            return jsonResponse(.ok, OpenAIAPI.reply(head, text: text, finish: finish, usage: usage))
        }
        let includeUsage = api.includeUsage
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            do {
                if chat { try await writer.write(ByteBuffer(bytes: OpenAIAPI.chunk(head, text: "", first: true))) }
                for await event in events {
                    switch event {
                    case .text(let piece):
                        try await writer.write(ByteBuffer(bytes: OpenAIAPI.chunk(head, text: piece)))
                    case .finished(let reason, let p, let c):
                        try await writer.write(ByteBuffer(bytes: OpenAIAPI.chunk(head, text: nil, finish: reason)))
                        if includeUsage {
                            try await writer.write(ByteBuffer(bytes: OpenAIAPI.chunk(head, text: nil, usage: .init(prompt: p, completion: c))))
                        }
                    }
                }
                try await writer.write(ByteBuffer(bytes: OpenAIAPI.done))
                try await writer.finish(nil)
            } catch {
                handle.cancel()   // the client went away: its slot is freed at the next step
                throw error
            }
        })
    }
}

private func jsonResponse(_ status: HTTPResponse.Status, _ data: Data) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

private func errorResponse(_ error: APIError) -> Response {
    jsonResponse(HTTPResponse.Status(code: error.status), error.body)
}

/// Numbers for request ids and default seeds.
private final class RequestCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: UInt64 = 0
    func next() -> UInt64 { lock.withLock { value += 1; return value } }
}
