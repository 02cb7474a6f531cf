// The HTTP side of `nanochat serve`, as nanochat's chat_web: GET / is the chat page
// (chat.html, compiled in); POST /v1/chat/completions and /v1/completions speak OpenAI's API
// (whole replies or server-sent events); GET /health and /v1/models tell what runs. Requests
// are decoded together by one ChatEngine (continuous batching); errors answer as OpenAI's
// error object.
import Foundation
import Hummingbird
import HummingbirdCore
import Inference
import Tokenizer
import NIOCore

/// How the server task ended, handed back to the waiting thread.
private final class Outcome: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: (any Error)?
    func set(_ e: any Error) { lock.withLock { stored = e } }
    var error: (any Error)? { lock.withLock { stored } }
}

/// Who may reach the server and how long a client may take: the defences of a server other
/// people's clients (and browsers on other sites) can reach.
public struct AccessPolicy: Sendable {
    /// Seconds a client has to send a whole request (header and body) and that an idle
    /// connection stays open.
    public var clientTimeout: Double
    /// Open connections at most; more wait in the listen queue until some close.
    public var maxConnections: Int
    /// The key a client must give as `Authorization: Bearer KEY` on /v1/; none when nil.
    public var apiKey: String?
    /// Web origins (`https://app.example`) whose pages may call the API; `*` allows any.
    /// Other origins are refused, so a page on another site cannot use the server.
    public var allowedOrigins: [String]
    /// The server listens on a loopback address only: a request must name a loopback host
    /// (localhost, 127.x.x.x, [::1]) in `Host`, so a site whose name resolves to 127.0.0.1
    /// (DNS rebinding) cannot reach it from a browser.
    public var loopbackOnly: Bool

    /// What `nanochat serve` allows when its flags do not say: the defaults live here only.
    public static let defaultClientTimeout = 30.0
    public static let defaultMaxConnections = 1024

    public init(clientTimeout: Double = AccessPolicy.defaultClientTimeout, maxConnections: Int = AccessPolicy.defaultMaxConnections,
                apiKey: String? = nil,
                allowedOrigins: [String] = [], loopbackOnly: Bool = true) {
        self.clientTimeout = clientTimeout; self.maxConnections = maxConnections; self.apiKey = apiKey
        self.allowedOrigins = allowedOrigins; self.loopbackOnly = loopbackOnly
    }

    /// Whether `host` (an address to listen on, or a Host header's name) is a loopback one:
    /// localhost, ::1, or an IPv4 address 127.x.x.x (four numbers of one to three digits, each at
    /// most 255; `127.evil.example` is not).
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        if h == "localhost" || h == "::1" || h == "[::1]" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isASCII) && p.allSatisfy(\.isNumber) && Int(p).map { $0 <= 255 } == true }
    }

    /// Whether a key given is the server's, every byte compared whatever the first
    /// difference (the time taken does not tell how much of a guess was right); keys of
    /// different lengths differ even where the longer one only adds zero bytes.
    public static func sameKey(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }

    /// The host name of a Host header's value, without the port (`[::1]:8000` → `::1`).
    public static func hostName(_ host: String) -> String {
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            return String(host[host.index(after: host.startIndex)..<close])
        }
        return String(host.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
    }
}

/// The request context: Hummingbird's, and the connection, so a request whose client has
/// gone can stop.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Runs an action once the request's connection closes (at once if it has).
    let whenClosed: @Sendable (@escaping @Sendable () -> Void) -> Void
    /// Closes the request's connection.
    let close: @Sendable () -> Void

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        let channel = source.channel
        whenClosed = { action in channel.closeFuture.whenComplete { _ in action() } }
        close = { channel.close(promise: nil) }
    }
}

/// The routes and what they answer.
public struct APIServer: Sendable {
    let engine: ChatEngine
    let model: String
    let seed: UInt64
    let maxWaiting: Int
    let limits: APILimits
    let access: AccessPolicy
    private let counter = RequestCounter()
    private let admission = Admission()

    public init(engine: ChatEngine, model: String, seed: UInt64, maxWaiting: Int, limits: APILimits,
                access: AccessPolicy = AccessPolicy()) {
        self.engine = engine; self.model = model; self.seed = seed; self.maxWaiting = maxWaiting; self.limits = limits
        self.access = access
    }

    /// Serves on host:port until the process is told to stop (SIGINT, SIGTERM); `onRunning`
    /// runs once the server listens.
    public func run(host: String, port: Int, onRunning: @escaping @Sendable () -> Void) throws {
                let app = Application(router: router(),
                              server: .http1(configuration: .init(additionalChannelHandlers: [ClientLeftHandler()],
                                                                  idleTimeout: .milliseconds(Int64(access.clientTimeout * 1000)))),
                              configuration: .init(address: .hostname(host, port: port), serverName: "nanochat",
                                                   availableConnectionsDelegate: MaximumAvailableConnections(access.maxConnections)),
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

    public func router() -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: AccessMiddleware(policy: access))
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
            jsonResponse(.ok, OpenAIAPI.jsonData(["object": "list", "data": [modelObject]]))
        }
        router.get("/v1/models/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard id == model else {
                return errorResponse(APIError(status: 404, "the model \"\(id)\" does not exist; this server runs \"\(model)\"",
                                              param: "model", code: "model_not_found"))
            }
            return jsonResponse(.ok, OpenAIAPI.jsonData(modelObject))
        }
        router.post("/v1/chat/completions") { request, context in await complete(request, context: context, chat: true) }
        router.post("/v1/completions") { request, context in await complete(request, context: context, chat: false) }
        return router
    }

    private var modelObject: [String: Any] { ["id": model, "object": "model", "created": 0, "owned_by": "nanochat"] }

    /// The body, refused early when its announced length is over the limit, and cut off when
    /// the client takes longer than the policy's timeout to send it.
    func readBody(_ request: Request, context: APIRequestContext) async throws(APIError) -> ByteBuffer {
        let limit = limits.maxBodyBytes
        if let announced = request.headers[.contentLength].flatMap({ Int($0) }), announced > limit {
            throw APIError(status: 413, "the request body has \(announced) bytes, more than the \(limit) allowed")
        }
        let seconds = access.clientTimeout
        let close = context.close
        let outcome: Result<ByteBuffer, any Error>? = await withTaskGroup(of: Result<ByteBuffer, any Error>?.self) { group in
            group.addTask {
                do { return .success(try await request.body.collect(upTo: limit)) } catch { return .failure(error) }
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
                return nil
            }
            let first: Result<ByteBuffer, any Error>? = await group.next() ?? nil
            if case nil = first { close() }   // ends the body's stream, so its reader returns
            group.cancelAll()
            return first
        }
        switch outcome {
        case .success(let body)?: return body
        case .failure?: throw APIError(status: 413, "the request body is larger than the \(limit) bytes allowed")
        case nil: throw APIError(status: 408, "the request body did not arrive within \(Int(seconds)) s")
        }
    }

    func complete(_ request: Request, context: APIRequestContext, chat: Bool) async -> Response {
        let body: ByteBuffer
        do {
            body = try await readBody(request, context: context)
        } catch {
            return errorResponse(error)
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
        // Admitted requests are counted here, not from the engine's counters (which move once
        // per step), so a burst cannot pass the limit. Each prompt of a request is one.
        let capacity = engine.status.slots + maxWaiting
        let count = api.generations.count
        guard admission.enter(capacity: capacity, count: count) else {
            return errorResponse(APIError(status: 429, "the server is busy: \(capacity) requests running or waiting; try again shortly",
                                          type: "rate_limit_error"))
        }
        let admission = self.admission
        let head = OpenAIAPI.ReplyHead(id: (chat ? "chatcmpl-" : "cmpl-") + String(counter.next(), radix: 16),
                                       created: Int(Date().timeIntervalSince1970), model: model, chat: chat)
        let (events, sink) = AsyncStream<(Int, GenerationEvent)>.makeStream()
        let running = RequestCounter(count)
        var submitted: [GenerationHandle] = []
        for (index, generation) in api.generations.enumerated() {
            submitted.append(engine.submit(generation) { event in
                sink.yield((index, event))
                if case .finished = event {
                    admission.leave()
                    if running.countDown() == 0 { sink.finish() }
                }
            })
        }
        let handles = submitted
        let cancel: @Sendable () -> Void = { for handle in handles { handle.cancel() } }
        sink.onTermination = { _ in cancel() }
        // A client that closes its connection stops its generation at the next step, whole
        // replies as well as streams.
        context.whenClosed { cancel() }
        let replies = ChoiceReplies(api, tokenizer: engine.tokenizer)

        if !api.stream {
            var choices = api.generations.map { _ in ChoiceReplies.State() }
            await withTaskCancellationHandler {
                for await (index, event) in events { replies.collect(event, index: index, into: &choices[index]) }
            } onCancel: { cancel() }
            if choices.contains(where: { $0.finish == .cancelled }) {
                return errorResponse(APIError(status: 503, "the server stopped before the reply was done", type: "server_error"))
            }
            return jsonResponse(.ok, OpenAIAPI.reply(head, choices: choices.indices.map { replies.choice($0, choices[$0]) },
                                                     usage: replies.usage(choices)))
        }
        let includeUsage = api.includeUsage
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            do {
                var choices = api.generations.map { _ in ChoiceReplies.State() }
                for index in choices.indices {
                    if chat { try await writer.write(ByteBuffer(bytes: OpenAIAPI.chunk(head, index: index, text: "", first: true))) }
                    if let echo = replies.echoWithoutScores(index) {
                        try await writer.write(ByteBuffer(bytes: OpenAIAPI.chunk(head, index: index, text: echo)))
                    }
                }
                for await (index, event) in events {
                    if let chunk = replies.stream(event, head: head, index: index, state: &choices[index]) {
                        try await writer.write(ByteBuffer(bytes: chunk))
                    }
                }
                if includeUsage {
                    try await writer.write(ByteBuffer(bytes: OpenAIAPI.chunk(head, text: nil, usage: replies.usage(choices))))
                }
                try await writer.write(ByteBuffer(bytes: OpenAIAPI.done))
                try await writer.finish(nil)
            } catch {
                cancel()   // the client went away: its slots are freed at the next step
                throw error
            }
        })
    }
}

/// How one request's generation events become its choices: text, finish, token counts and
/// log-probabilities (echoed prompt first where asked), whole or as stream chunks.
struct ChoiceReplies: Sendable {
    let request: APIRequest
    let tokenizer: Tokenizer

    init(_ request: APIRequest, tokenizer: Tokenizer) { self.request = request; self.tokenizer = tokenizer }

    struct State {
        var text = ""
        var finish = FinishReason.stop
        var usage = OpenAIAPI.Usage(prompt: 0, completion: 0)
        /// Echoed prompt tokens with their scores, then the drawn tokens' scores not yet sent
        /// (a stream) or all of them (a whole reply).
        var echoed: [(token: Int32, score: TokenScore?)] = []
        var scores: [TokenScore] = []
        /// Characters of the choice's text already sent (completions' text_offset).
        var offset = 0
        }

    /// The echoed prompt's tokens of choice `index` with their scores: each given all before it
    /// (the first, with nothing before it, has none).
    func echoItems(_ index: Int, _ promptScores: [TokenScore]) -> [(token: Int32, score: TokenScore?)] {
        guard let given = request.echo?[index] else { return [] }
        let skipped = request.generations[index].prompt.count - given.count   // the <|bos|> put before it
        return given.enumerated().map { j, token in
            let at = skipped + j
            return (token, at >= 1 && at - 1 < promptScores.count ? promptScores[at - 1] : nil)
        }
    }

    func echoText(_ index: Int) -> String {
        guard let given = request.echo?[index] else { return "" }
        return given.map { OpenAIAPI.tokenText($0, tokenizer) }.joined()
    }

    func collect(_ event: GenerationEvent, index: Int, into state: inout State) {
        switch event {
        case .prompt(let scores): state.echoed = echoItems(index, scores)
        case .token(let score): state.scores.append(score)
        case .text(let piece): state.text += piece
        case .finished(let reason, let p, let c): state.finish = reason; state.usage = .init(prompt: p, completion: c)
        }
    }

    func usage(_ choices: [State]) -> OpenAIAPI.Usage {
        .init(prompt: choices.map(\.usage.prompt).reduce(0, +), completion: choices.map(\.usage.completion).reduce(0, +))
    }

    func logprobs(_ index: Int, echoed: [(token: Int32, score: TokenScore?)], scores: [TokenScore], offset: inout Int) -> Any? {
        guard request.logprobs != nil else { return nil }
        if request.chat { return OpenAIAPI.chatLogprobs(scores, tokenizer: tokenizer) }
        let (object, end) = OpenAIAPI.completionLogprobs(echoed + scores.map { ($0.token, $0) }, tokenizer: tokenizer, offset: offset)
        offset = end
        return object
    }

    func choice(_ index: Int, _ state: State) -> OpenAIAPI.Choice {
        var offset = 0
        let echoed = request.logprobs != nil ? state.echoed : []
        return OpenAIAPI.Choice(text: echoText(index) + state.text, finish: state.finish,
                                logprobs: logprobs(index, echoed: echoed, scores: state.scores, offset: &offset))
    }

    /// The echo of a choice whose prompt comes without scores (echo without logprobs), sent
    /// before anything else.
    func echoWithoutScores(_ index: Int) -> String? {
        guard request.echo != nil, request.logprobs == nil else { return nil }
        return echoText(index)
    }

    /// The chunk an event makes, if any.
    func stream(_ event: GenerationEvent, head: OpenAIAPI.ReplyHead, index: Int, state: inout State) -> Data? {
        switch event {
        case .prompt(let promptScores):
            let items = echoItems(index, promptScores)
            return OpenAIAPI.chunk(head, index: index, text: echoText(index),
                                   logprobs: logprobs(index, echoed: items, scores: [], offset: &state.offset))
        case .token(let score):
            state.scores.append(score)
            return nil
        case .text(let piece):
            defer { state.scores = [] }
            return OpenAIAPI.chunk(head, index: index, text: piece,
                                   logprobs: logprobs(index, echoed: [], scores: state.scores, offset: &state.offset))
        case .finished(let reason, let p, let c):
            state.usage = .init(prompt: p, completion: c)
            let rest = state.scores.isEmpty ? nil : logprobs(index, echoed: [], scores: state.scores, offset: &state.offset)
            state.scores = []
            return OpenAIAPI.chunk(head, index: index, text: nil, finish: reason, logprobs: rest)
        }
    }
}

private func jsonResponse(_ status: HTTPResponse.Status, _ data: Data) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

private func errorResponse(_ error: APIError) -> Response {
    jsonResponse(HTTPResponse.Status(code: error.status), error.body)
}

/// Closes a connection whose client has closed its side: a client that leaves before its
/// reply (HTTP clients do not half-close and then wait), so its generation stops.
private final class ClientLeftHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed? = event as? ChannelEvent {
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Requests admitted and not yet finished.
private final class Admission: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    /// Admits `n` requests together, or none.
    func enter(capacity: Int, count n: Int = 1) -> Bool {
        lock.withLock {
            guard count + n <= capacity else { return false }
            count += n
            return true
        }
    }
    func leave() { lock.withLock { count -= 1 } }
}

/// Numbers for request ids and default seeds; counted down, the generations of a request
/// still running.
private final class RequestCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: UInt64
    init(_ start: Int = 0) { value = UInt64(start) }
    func next() -> UInt64 { lock.withLock { value += 1; return value } }
    func countDown() -> UInt64 { lock.withLock { value -= 1; return value } }
}

/// The checks before any route: the Host a request names (when the server listens on
/// loopback only), the origin of a page that sends it, and the API key; answers CORS
/// preflights for the allowed origins and marks their replies.
struct AccessMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let policy: AccessPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if policy.loopbackOnly, let host = request.head.authority, !AccessPolicy.isLoopback(AccessPolicy.hostName(host)) {
            return errorResponse(APIError(status: 403, "the Host \"\(host)\" is not this server's: it listens on loopback and answers requests for localhost only",
                                          type: "permission_error"))
        }
        var allowed: String?
        if let origin = request.headers[.origin] {
            if policy.allowedOrigins.contains("*") || policy.allowedOrigins.contains(origin) {
                allowed = origin
            } else if !Self.sameOrigin(origin, host: request.head.authority) {
                return errorResponse(APIError(status: 403, "requests from the web origin \(origin) are refused; start the server with --allow-origin \(origin) to allow them",
                                              type: "permission_error"))
            }
        }
        if request.method == .options, let origin = allowed {
            return Response(status: .noContent, headers: [
                .accessControlAllowOrigin: origin, .vary: "Origin",
                .accessControlAllowMethods: "GET, POST, OPTIONS",
                .accessControlAllowHeaders: "Authorization, Content-Type",
                .accessControlMaxAge: "600",
            ])
        }
        if let key = policy.apiKey, request.uri.path.hasPrefix("/v1/") {
            let given = request.headers[.authorization] ?? ""
            guard given.hasPrefix("Bearer "), AccessPolicy.sameKey(String(given.dropFirst(7)), key) else {
                var response = errorResponse(APIError(status: 401, given.isEmpty ? "this server needs an API key: send it as Authorization: Bearer KEY"
                                                                             : "the API key given is not this server's",
                                                      type: "invalid_request_error", code: "invalid_api_key"))
                if let origin = allowed { response.headers[.accessControlAllowOrigin] = origin }
                return response
            }
        }
        var response = try await next(request, context)
        if let origin = allowed {
            response.headers[.accessControlAllowOrigin] = origin
            response.headers[.vary] = "Origin"
        }
        return response
    }

    /// Whether a page's origin is this server as the request names it (the chat page's own).
    static func sameOrigin(_ origin: String, host: String?) -> Bool {
        guard let host else { return false }
        return origin == "http://" + host || origin == "https://" + host
    }
}
