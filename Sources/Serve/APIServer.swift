// The HTTP side of `nanochat serve`, as nanochat's chat_web: GET / is the chat page
// (chat.html, compiled in); POST /v1/chat/completions and /v1/completions speak OpenAI's API
// (whole replies or server-sent events); GET /health and /v1/models tell what runs. Requests
// are decoded together by one ChatEngine (continuous batching); errors answer as OpenAI's
// error object.
import Foundation
import Hummingbird
import Inference

/// How the server task ended, handed back to the waiting thread.
private final class Outcome: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: (any Error)?
    func set(_ e: any Error) { lock.withLock { stored = e } }
    var error: (any Error)? { lock.withLock { stored } }
}

/// The routes and what they answer.
public struct APIServer: Sendable {
    let engine: ChatEngine
    let model: String
    let seed: UInt64
    let maxWaiting: Int
    let limits: APILimits
    private let counter = RequestCounter()

    public init(engine: ChatEngine, model: String, seed: UInt64, maxWaiting: Int, limits: APILimits) {
        self.engine = engine; self.model = model; self.seed = seed; self.maxWaiting = maxWaiting; self.limits = limits
    }

    /// Serves on host:port until the process is told to stop (SIGINT, SIGTERM); `onRunning`
    /// runs once the server listens.
    public func run(host: String, port: Int, onRunning: @escaping @Sendable () -> Void) throws {
        let app = Application(router: router(),
                              configuration: .init(address: .hostname(host, port: port), serverName: "nanochat"),
                              onServerRunning: { _ in onRunning() })
        let outcome = Outcome()
        let finished = DispatchSemaphore(value: 0)
        Task {
            do { try await app.runService() } catch { outcome.set(error) }
            finished.signal()
        }
        finished.wait()
        if let error = outcome.error { throw error }
    }

    public func router() -> Router<BasicRequestContext> {
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
