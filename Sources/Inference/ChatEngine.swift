// Many generations at once on one model (continuous batching). Each request has its own
// decode cache; one engine thread prefills a newly arrived request on its own, then every
// running request advances by one token in a single batched step (the weights' products see
// all rows; attention and Mamba states stay per request). A request joins at the next step
// and leaves when it finishes or its client goes away, freeing its slot.
import Blocks
import Foundation
import Tensor
import Tokenizer

/// What to generate: prompt ids and how to continue them.
public struct GenerationRequest: Sendable {
    public enum Mode: Sendable {
        /// A chat reply: stops at <|assistant_end|>, calculator calls are answered.
        case chat
        /// Plain text continuation: stops at <|bos|> (a new document).
        case completion
    }
    public var prompt: [Int32]
    public var mode: Mode
    public var maxTokens: Int
    public var sampler: Sampler
    /// Texts that end the generation where they first appear (not included).
    public var stop: [String]
    /// Go on past the end tokens to max_tokens (for load tests: every request the same length).
    public var ignoreEnd: Bool
    /// Added to a token's logit before it is drawn (OpenAI's logit_bias).
    public var logitBias: [Int32: Double] = [:]
    /// Taken from the logit of every token already generated (presence), and again for each
    /// time it was (frequency), before the next is drawn: OpenAI's penalties.
    public var presencePenalty = 0.0, frequencyPenalty = 0.0
    /// Report each drawn token's score with this many alternatives (`.token` events); none
    /// when nil.
    public var logprobs: Int?
    /// Report the prompt's scores (one `.prompt` event before anything else) with this many
    /// alternatives; none when nil. With it, maxTokens may be 0: the prompt is only scored.
    public var promptLogprobs: Int?

    public init(prompt: [Int32], mode: Mode, maxTokens: Int, sampler: Sampler, stop: [String] = [], ignoreEnd: Bool = false) {
        self.prompt = prompt; self.mode = mode; self.maxTokens = maxTokens; self.sampler = sampler; self.stop = stop
        self.ignoreEnd = ignoreEnd
    }

    /// The logits a token is drawn from: the model's, plus the bias, minus for each token
    /// generated `count` times presencePenalty + frequencyPenalty × count.
    public func adjusted(_ logits: [Double], counts: [Int32: Int]) -> [Double] {
        var out = logits
        for (token, bias) in logitBias { out[Int(token)] += bias }
        if presencePenalty != 0 || frequencyPenalty != 0 {
            for (token, count) in counts where count > 0 { out[Int(token)] -= presencePenalty + frequencyPenalty * Double(count) }
        }
        return out
    }
}

public enum FinishReason: String, Sendable {
    /// An end token or a stop text.
    case stop
    /// max_tokens reached.
    case length
    /// The client went away (or the server is stopping).
    case cancelled
}

public enum GenerationEvent: Sendable {
    /// The next piece of text (never empty).
    case text(String)
    /// The scores of the prompt's tokens after its first (each given those before it), when
    /// asked for: before any text.
    case prompt([TokenScore])
    /// A drawn token's score, when asked for: before the text it makes (which may come later,
    /// or never where it ends the reply or a stop text cut it).
    case token(TokenScore)
    case finished(FinishReason, promptTokens: Int, completionTokens: Int)
}

/// The caller's side of a submitted request.
public final class GenerationHandle: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    weak var engine: ChatEngine?

    /// Ends the generation at the next step (its slot is freed); safe from any thread.
    public func cancel() {
        lock.withLock { cancelled = true }
        engine?.wake()
    }

    var isCancelled: Bool { lock.withLock { cancelled } }
}

public final class ChatEngine: @unchecked Sendable {
    public let model: GPT
    public let tokenizer: Tokenizer
    /// Most requests decoded together; more wait for a slot.
    public let slots: Int

    public struct Status: Sendable {
        public var running: Int, waiting: Int, slots: Int
        /// Batched steps taken and tokens generated since the start.
        public var steps: Int, generated: Int
    }

    private let special: ChatTokens
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var stopping = false
    private var counters = Status(running: 0, waiting: 0, slots: 0, steps: 0, generated: 0)
    private var thread: Thread?

    public init(model: GPT, tokenizer: Tokenizer, slots: Int) {
        self.model = model
        self.tokenizer = tokenizer
        self.slots = max(1, slots)
        special = ChatTokens(tokenizer)
        counters.slots = self.slots
    }

    /// Starts the engine thread.
    public func start() {
        condition.withLock {
            guard thread == nil else { return }
            let t = Thread { [self] in loop() }
            t.name = "nanochat-engine"
            t.stackSize = 16 << 20
            thread = t
            t.start()
        }
    }

    /// Ends every generation (cancelled) and the engine thread.
    public func stop() {
        condition.withLock { stopping = true; condition.broadcast() }
    }

    public var status: Status { condition.withLock { counters } }

    /// Queues a request; `onEvent` gets its text and then one `.finished`, on the engine thread
    /// (or at once on this one, when the request is refused).
    public func submit(_ request: GenerationRequest, onEvent: @escaping @Sendable (GenerationEvent) -> Void) -> GenerationHandle {
        let handle = GenerationHandle()
        handle.engine = self
        let job = Job(request: request, handle: handle, onEvent: onEvent, special: special, tokenizer: tokenizer)
        // Finished outside the lock: the caller's handler may cancel, which takes it.
        let refused: FinishReason? = condition.withLock {
            // Nothing to continue, or nothing asked for.
            if request.prompt.isEmpty || request.maxTokens < 0 || (request.maxTokens == 0 && request.promptLogprobs == nil) { return .length }
            if stopping { return .cancelled }
            queue.append(job)
            counters.waiting = queue.count
            condition.broadcast()
            return nil
        }
        if let refused { job.finish(refused) }
        return handle
    }

    func wake() { condition.withLock { condition.broadcast() } }

    private func loop() {
        var running: [Job] = []
        while true {
            condition.lock()
            while !stopping && queue.isEmpty && running.isEmpty { condition.wait() }
            if stopping {
                let all = running + queue
                queue = []
                condition.unlock()
                for job in all { job.finish(.cancelled) }
                return
            }
            let admitted = Array(queue.prefix(slots - running.count))
            queue.removeFirst(admitted.count)
            counters.waiting = queue.count
            condition.unlock()

            var chosen = 0
            for job in admitted {
                guard !job.handle.isCancelled else { job.finish(.cancelled); continue }
                let sequence = DecodingSequence(model: model, sampler: job.request.sampler,
                                                expectedTokens: job.request.prompt.count + job.request.maxTokens)
                job.sequence = sequence
                if job.start() { chosen += 1 }
                if !job.done { running.append(job) }
            }
            for job in running where job.handle.isCancelled { job.finish(.cancelled) }
            running.removeAll { $0.done }
            let stepped = !running.isEmpty
            if stepped {
                let tokens = running.map { $0.feed.removeFirst() }
                let logits = DecodingSequence.step(running.map { $0.sequence! }, tokens: tokens)
                for (job, rowLogits) in zip(running, logits) where job.feed.isEmpty {
                    job.choose(rowLogits)
                    chosen += 1
                }
                running.removeAll { $0.done }
            }
            condition.withLock {
                counters.running = running.count
                counters.steps += stepped ? 1 : 0
                counters.generated += chosen
            }
        }
    }
}

/// One request's decoding state, touched only by the engine thread (after submit).
private final class Job {
    let request: GenerationRequest
    let handle: GenerationHandle
    let onEvent: @Sendable (GenerationEvent) -> Void
    let special: ChatTokens
    let tokenizer: Tokenizer
    /// The request's cache and sampler, from its admission to its end.
    var sequence: DecodingSequence?
    /// Tokens chosen (or forced) but not yet fed to the model, in order.
    var feed: [Int32] = []
    var generated = 0
    /// How many times each token was generated (drawn or forced), for the penalties.
    var counts: [Int32: Int] = [:]
    var done = false
    var decoder: ReplyDecoder
    /// The text produced so far as bytes, and how many of them were sent (the rest may be
    /// the start of a stop text).
    var text: [UInt8] = []
    var sent = 0
    let stops: [[UInt8]]

    init(request: GenerationRequest, handle: GenerationHandle, onEvent: @escaping @Sendable (GenerationEvent) -> Void,
         special: ChatTokens, tokenizer: Tokenizer) {
        self.request = request; self.handle = handle; self.onEvent = onEvent
        self.special = special; self.tokenizer = tokenizer
        decoder = ReplyDecoder(tokenizer: tokenizer, special: special, chat: request.mode == .chat, ignoreEnd: request.ignoreEnd)
        stops = request.stop.map { Array($0.utf8) }.filter { !$0.isEmpty }
    }

    /// Feeds the prompt (its scores reported when asked for), then picks the first token;
    /// false when none was asked for.
    func start() -> Bool {
        guard let sequence else { return false }
        let (last, scores) = sequence.feed(request.prompt, scoringTop: request.promptLogprobs)
        if request.promptLogprobs != nil { onEvent(.prompt(scores)) }
        guard request.maxTokens > 0 else { finish(.length); return false }
        choose(last)
        return true
    }

    /// Picks the next token from `logits` (after the request's bias and penalties) and acts on it.
    func choose(_ logits: [Double]) {
        guard let sequence else { return }
        let next = sequence.pick(request.adjusted(logits, counts: counts))
        generated += 1
        var forced: [Int32] = []
        let step = decoder.step(next)
        // Every drawn token is scored but a chat reply's end (OpenAI's chat lists content
        // tokens only); a completion's <|bos|> is listed as OpenAI lists its end of text, so a
        // harness that drops the last token of an echo drops the drawn one.
        if let top = request.logprobs, step != .end || request.mode == .completion {
            onEvent(.token(TokenScore(logits: logits, token: next, top: top)))
        }
        switch step {
        case .end:
            finish(.stop)
            return
        case .text(let piece):
            add(piece)
        case .tool(let expression, let answer, let answerTokens):
            add(ReplyPiece.toolCall(expression).shown + ReplyPiece.toolResult(answer).shown)
            forced = answerTokens
        }
        guard !done else { return }
        if generated >= request.maxTokens {
            finish(.length)
            return
        }
        feed = [next] + forced
        for token in feed { counts[token, default: 0] += 1 }
    }

    /// Appends text, sends what cannot be the start of a stop text, and stops at one.
    func add(_ piece: String) {
        guard !piece.isEmpty, !done else { return }
        text += piece.utf8
        var cut = text.count, hit = false
        for stop in stops {
            let from = max(0, sent - stop.count + 1)
            if let at = text[from...].firstRange(of: stop)?.lowerBound, at < cut { cut = at; hit = true }
        }
        if !hit {
            for stop in stops {
                // The longest tail of the text that begins the stop text is held back.
                for k in stride(from: min(stop.count - 1, text.count - sent), to: 0, by: -1)
                    where text[(text.count - k)...].elementsEqual(stop[..<k]) {
                    cut = min(cut, text.count - k)
                    break
                }
            }
        }
        send(upTo: cut)
        if hit { finish(.stop, flush: false) }
    }

    func send(upTo end: Int) {
        guard end > sent else { return }
        onEvent(.text(String(decoding: text[sent..<end], as: UTF8.self)))
        sent = end
    }

    /// Ends the generation: what is held back is sent (unless a stop text ended it), then
    /// the finish event.
    func finish(_ reason: FinishReason, flush: Bool = true) {
        guard !done else { return }
        if flush && reason != .cancelled {
            let tail = decoder.finish()
            if !tail.isEmpty { add(tail) }
            if !done { send(upTo: text.count) }
        }
        guard !done else { return }
        done = true
        sequence = nil
        onEvent(.finished(reason, promptTokens: request.prompt.count, completionTokens: generated))
    }
}
