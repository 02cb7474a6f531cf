// Ranks as threads of one process: the collectives of `Collectives` over memory they share,
// so that the data-parallel exchange (gradients summed onto their owners, clipping by the
// global norm, weights shared back, the optimiser state gathered to rank 0) runs in a test
// without an MPI launcher. Sums are taken in rank order, so the same ranks give the same bits.
import Foundation

public final class InProcessWorld: Collectives, @unchecked Sendable {
    public let rank: Int
    public var size: Int { hub.size }
    private let hub: Hub

    private init(rank: Int, hub: Hub) { self.rank = rank; self.hub = hub }

    /// The ranks of one group, 0..<size, each to be used by its own thread. `sharedWindow`:
    /// whether `nodeWindow` gives a window (the one-host route) or nil (the route of
    /// `sumScattered` and `gather`, as across hosts). `inPlace`: whether, on the one-host
    /// route, the windows that hold the gradients and the weights themselves are had too (as
    /// when they fit MPI's one call) or nil (both go through the exchange's buckets).
    /// `latency`: seconds after its sending that a message between two ranks can be received
    /// (as over a slow link; the collectives are not delayed).
    public static func group(size: Int, sharedWindow: Bool, inPlace: Bool = true, latency: Double = 0) -> [InProcessWorld] {
        precondition(size >= 1, "a group needs at least one rank")
        precondition(latency >= 0 && latency.isFinite, "a latency of \(latency) seconds")
        let hub = Hub(size: size, sharedWindow: sharedWindow, inPlace: inPlace, latency: latency)
        return (0..<size).map { InProcessWorld(rank: $0, hub: hub) }
    }

    /// Ranks still running `timeoutSeconds` after `run` started them: taken for a deadlock
    /// (ranks waiting on each other forever). Their threads are left blocked.
    public struct Stalled: Error, CustomStringConvertible {
        public let running: [Int], timeoutSeconds: Double
        public var description: String {
            "ranks \(running.map(String.init).joined(separator: ", ")) still running after \(timeoutSeconds) s: a deadlock in the collectives or the exchange"
        }
    }

    /// Runs `body(rank)` for every rank of `worlds` on a thread of its own, and returns their
    /// results in rank order once all have finished. A rank that has not finished after
    /// `timeoutSeconds` throws `Stalled` naming the ranks still running, so a deadlock fails a
    /// test instead of hanging the suite.
    public static func run<R>(_ worlds: [InProcessWorld], timeoutSeconds: Double = 300,
                              _ body: @escaping @Sendable (InProcessWorld) throws -> R) throws -> [R] {
        precondition(timeoutSeconds > 0, "a timeout of \(timeoutSeconds) seconds")
        let results = Locked([Result<R, Error>?](repeating: nil, count: worlds.count))
        let done = DispatchGroup()
        for world in worlds {
            done.enter()
            let thread = Thread {
                let result = Result { try body(world) }
                results.update { $0[world.rank] = result }
                done.leave()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        guard done.wait(timeout: .now() + timeoutSeconds) == .success else {
            let finished = results.value
            throw Stalled(running: worlds.map(\.rank).filter { finished[$0] == nil }, timeoutSeconds: timeoutSeconds)
        }
        return try results.value.map { result in
            guard let result else { preconditionFailure("a rank left without a result") }
            return try result.get()
        }
    }

    public func barrier() { hub.barrier() }

    public func sum(_ values: [Double]) -> [Double] {
        hub.lock.lock(); hub.doubles[rank] = values; hub.lock.unlock()
        hub.barrier()
        hub.lock.lock()
        var total = [Double](repeating: 0, count: values.count)
        for r in 0..<size { for (i, v) in hub.doubles[r].enumerated() { total[i] += v } }
        hub.lock.unlock()
        hub.barrier()   // everyone has read before anyone writes again
        return total
    }

    public func sumScattered(_ send: UnsafePointer<Float>, into receive: UnsafeMutablePointer<Float>, counts: [Int32]) {
        precondition(counts.count == size)
        publish(UnsafeMutableRawPointer(mutating: send))
        let at = counts.prefix(rank).reduce(0) { $0 + Int($1) }, count = Int(counts[rank])
        let peers = hub.pointers.map { $0!.assumingMemoryBound(to: Float.self) }
        receive.update(from: peers[0] + at, count: count)
        for peer in peers.dropFirst() { for i in 0..<count { receive[i] += peer[at + i] } }
        hub.barrier()
    }

    /// Transfers start lazily, as MPI's may: a started send reads its buffer when this rank
    /// next moves its transfers on (`isDone` on any handle) or finishes it, and when it is
    /// finished its buffer must still hold what was sent (a caller that writes a buffer
    /// before finishing its send stops here); a receive completes when asked about or
    /// finished, so a caller that never finishes one leaves its buffer unwritten.
    public func startSend(_ buffer: UnsafePointer<Float>, count: Int, to other: Int, tag: Int) -> Int {
        precondition((0...32767).contains(tag), "tag \(tag) is outside the 0...32767 every MPI library takes")
        return begin(.send(buffer, count, other, tag, posted: nil))
    }

    public func startReceive(_ buffer: UnsafeMutablePointer<Float>, count: Int, from other: Int, tag: Int) -> Int {
        precondition((0...32767).contains(tag), "tag \(tag) is outside the 0...32767 every MPI library takes")
        return begin(.receive(buffer, count, other, tag))
    }

    /// Records a started transfer under a new handle.
    private func begin(_ transfer: Transfer) -> Int {
        started[nextHandle] = transfer
        nextHandle += 1
        return nextHandle - 1
    }

    private enum Transfer {
        /// `posted`: what was sent, once it was.
        case send(UnsafePointer<Float>, Int, Int, Int, posted: [Float]?)
        case receive(UnsafeMutablePointer<Float>, Int, Int, Int)
    }
    private var started: [Int: Transfer] = [:]
    /// Transfers started and not yet finished (every one must be, once).
    public var unfinishedTransfers: Int { started.count }
    private var nextHandle = 0

    /// Posts every started send not yet posted (as MPI's progress moves all of a rank's
    /// transfers), then whether `handle` is over: a send once posted, a receive once its
    /// message has come (it is then taken).
    public func isDone(_ handle: Int) -> Bool {
        for h in started.keys.sorted() {   // handles grow: the order started
            if case .send(let buffer, let count, let other, let tag, nil)? = started[h] {
                started[h] = .send(buffer, count, other, tag, posted: post(buffer, count: count, to: other, tag: tag))
            }
        }
        switch started[handle] {
        case .send?, nil: return true
        case .receive(let buffer, let count, let other, let tag)?:
            guard take(buffer, count: count, from: other, tag: tag, wait: false) else { return false }
            started[handle] = nil
            return true
        }
    }

    public func finish(_ handle: Int) {
        switch started.removeValue(forKey: handle) {
        case .send(let buffer, let count, let other, let tag, let posted)?:
            guard let posted else { post(buffer, count: count, to: other, tag: tag); return }
            precondition(posted.elementsEqual(UnsafeBufferPointer(start: buffer, count: count)),
                         "rank \(rank) wrote a buffer while sending it to rank \(other) (tag \(tag))")
        case .receive(let buffer, let count, let other, let tag)?: take(buffer, count: count, from: other, tag: tag)
        case nil: break
        }
    }

    public func gather(_ buffer: UnsafeMutablePointer<Float>, counts: [Int32]) {
        precondition(counts.count == size)
        publish(UnsafeMutableRawPointer(buffer))
        var at = 0
        for (r, c) in counts.enumerated() {
            if r != rank { (buffer + at).update(from: hub.pointers[r]!.assumingMemoryBound(to: Float.self) + at, count: Int(c)) }
            at += Int(c)
        }
        hub.barrier()
    }

    public func nodeWindow(_ which: NodeWindow, floats: Int) -> [UnsafeMutablePointer<Float>]? {
        guard hub.sharedWindow, which == .exchange || hub.inPlace else { return nil }
        hub.lock.lock()
        if hub.windows[which] == nil {
            // 64-byte aligned, as tensors' memory is.
            let peers = (0..<size).map { _ in
                UnsafeMutableRawPointer.allocate(byteCount: floats * 4, alignment: 64).bindMemory(to: Float.self, capacity: floats)
            }
            hub.windows[which] = (floats, peers)
        }
        let window = hub.windows[which]
        hub.lock.unlock()
        return window?.floats == floats ? window?.peers : nil
    }

    public func syncWindow() { hub.barrier() }

    public func send(_ buffer: UnsafeMutablePointer<Float>, count: Int, to other: Int) {
        post(buffer, count: count, to: other, tag: -1)
    }

    public func receive(_ buffer: UnsafeMutablePointer<Float>, count: Int, from other: Int) {
        take(buffer, count: count, from: other, tag: -1)
    }

    /// Puts a copy of the floats in `other`'s mailbox; returns it.
    @discardableResult
    private func post(_ buffer: UnsafePointer<Float>, count: Int, to other: Int, tag: Int) -> [Float] {
        let message = Array(UnsafeBufferPointer(start: buffer, count: count))
        let arrival = Date(timeIntervalSinceNow: hub.latency)
        hub.lock.lock()
        hub.mail[Hub.Route(from: rank, to: other, tag: tag), default: []].append((message, arrival))
        hub.lock.broadcast()
        hub.lock.unlock()
        return message
    }

    /// Takes the first message from `other` under `tag` into `buffer` once it has arrived,
    /// waiting for it unless `wait` is false (then returns whether it had arrived).
    @discardableResult
    private func take(_ buffer: UnsafeMutablePointer<Float>, count: Int, from other: Int, tag: Int, wait: Bool = true) -> Bool {
        let route = Hub.Route(from: other, to: rank, tag: tag)
        hub.lock.lock()
        var message: [Float]?
        while message == nil {
            if let first = hub.mail[route]?.first, first.arrival <= Date() {
                message = hub.mail[route]?.removeFirst().floats
            } else if !wait {
                break
            } else if let first = hub.mail[route]?.first {
                _ = hub.lock.wait(until: first.arrival)
            } else {
                hub.lock.wait()
            }
        }
        hub.lock.unlock()
        guard let message else { return false }
        precondition(message.count == count, "rank \(rank) expected \(count) floats from rank \(other), got \(message.count)")
        buffer.update(from: message, count: count)
        return true
    }

    /// Shows this rank's buffer to the others, once every rank has shown its own.
    private func publish(_ pointer: UnsafeMutableRawPointer) {
        hub.lock.lock(); hub.pointers[rank] = pointer; hub.lock.unlock()
        hub.barrier()
    }

    /// What the ranks of a group share.
    private final class Hub: @unchecked Sendable {
        struct Route: Hashable { let from: Int, to: Int, tag: Int }
        let size: Int, sharedWindow: Bool, inPlace: Bool, latency: Double
        let lock = NSCondition()
        var doubles: [[Double]]
        var pointers: [UnsafeMutableRawPointer?]
        var windows: [NodeWindow: (floats: Int, peers: [UnsafeMutablePointer<Float>])] = [:]
        /// The messages on each route, in the order sent, with when each can be received.
        var mail: [Route: [(floats: [Float], arrival: Date)]] = [:]
        private var waiting = 0, generation = 0
        private let gate = NSCondition()

        init(size: Int, sharedWindow: Bool, inPlace: Bool, latency: Double) {
            self.size = size; self.sharedWindow = sharedWindow; self.inPlace = inPlace; self.latency = latency
            doubles = Array(repeating: [], count: size)
            pointers = Array(repeating: nil, count: size)
        }

        deinit { for window in windows.values { window.peers.forEach { $0.deallocate() } } }

        func barrier() {
            gate.lock()
            let mine = generation
            waiting += 1
            if waiting == size {
                waiting = 0; generation += 1
                gate.broadcast()
            } else {
                while generation == mine { gate.wait() }
            }
            gate.unlock()
        }
    }
}

/// A value behind a lock, for results the ranks' threads hand back.
private final class Locked<Value>: @unchecked Sendable {
    private var stored: Value
    private let lock = NSLock()
    init(_ value: Value) { stored = value }
    var value: Value { lock.lock(); defer { lock.unlock() }; return stored }
    func update(_ body: (inout Value) -> Void) { lock.lock(); body(&stored); lock.unlock() }
}
