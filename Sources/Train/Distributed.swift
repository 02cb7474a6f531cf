// Data-parallel training over MPI: one process per rank, each with its own threads, started
// by `mpirun -np N nanochat train ...`. A rank computes the gradients of its micro-batches,
// the ranks sum them (MPI_Allreduce), and every rank takes the same optimiser step, so the
// weights stay identical everywhere. Without a launcher nothing here runs and training is
// the one-process code path, bit for bit.
import CMPI
import Foundation
import Tensor

/// What data-parallel training needs of its ranks: the collectives the trainer calls, every
/// rank calling each at the same point. `World` is MPI's; `InProcessWorld` runs ranks as
/// threads of one process (tests of the exchange without a launcher).
public protocol Collectives: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// Waits for every rank.
    func barrier()
    /// Sums doubles over the ranks (every rank gets the sums).
    func sum(_ values: [Double]) -> [Double]
    /// Sums the ranks' `send` buffers (rank r's part: `counts[r]` floats, the parts laid end
    /// to end) and leaves this rank's part of the sum in `receive`.
    func sumScattered(_ send: UnsafePointer<Float>, into receive: UnsafeMutablePointer<Float>, counts: [Int32])
    /// Starts sending `count` floats to a rank under a tag (0 ... 32767), or receiving them
    /// from one, without waiting: returns a handle for `isDone` and `finish`. The buffer
    /// stays untouched by the caller until the transfer has finished. A receive takes the
    /// first send from its rank under its tag.
    func startSend(_ buffer: UnsafePointer<Float>, count: Int, to rank: Int, tag: Int) -> Int
    func startReceive(_ buffer: UnsafeMutablePointer<Float>, count: Int, from rank: Int, tag: Int) -> Int
    /// Whether a started transfer has completed (it may move transfers on); false until it
    /// has, and it may stay false until `finish`.
    func isDone(_ handle: Int) -> Bool
    /// Waits for a started transfer to complete, and frees its handle; every started
    /// transfer is finished once, done or not.
    func finish(_ handle: Int)
    /// Copies every rank's part of `buffer` (rank r's: `counts[r]` floats, end to end, this
    /// rank's already in place) to every rank.
    func gather(_ buffer: UnsafeMutablePointer<Float>, counts: [Int32])
    /// Every rank's part of a window of `floats` floats all ranks can read, or nil where
    /// there is none (collective on the first call for each window; later calls return the
    /// same window, or nil when asked for another size).
    func nodeWindow(_ window: NodeWindow, floats: Int) -> [UnsafeMutablePointer<Float>]?
    /// Makes each rank's writes to the windows visible to all, once every rank has made them.
    func syncWindow()
    /// Sends floats to one rank, which must `receive` them.
    func send(_ buffer: UnsafeMutablePointer<Float>, count: Int, to rank: Int)
    func receive(_ buffer: UnsafeMutablePointer<Float>, count: Int, from rank: Int)
}

extension Collectives {
    /// Whether this is rank 0, the one that writes files and prints.
    public var isRoot: Bool { rank == 0 }

    /// The window the exchange's rounds go through.
    public func nodeWindow(floats: Int) -> [UnsafeMutablePointer<Float>]? { nodeWindow(.exchange, floats: floats) }
}

/// The shared-memory windows of ranks on one host.
public enum NodeWindow: Int, CaseIterable, Sendable {
    /// Buckets of gradients or weights, a round of the exchange at a time.
    case exchange
    /// Every gradient of each rank, where its owner reads it in place.
    case gradients
    /// The one copy of the weights every rank reads, each owner's in its part.
    case weights
}

/// The ranks of an MPI job, as this process sees them.
public final class World: Collectives, @unchecked Sendable {
    public let rank: Int, size: Int
    /// This rank's host, for messages.
    public let host: String

    /// The job's world when an MPI launcher started this process (MPI is initialised on the
    /// first use), nil otherwise.
    public static let current: World? = {
        guard nanochat_mpi_launched() != 0 else { return nil }
        var rank: Int32 = 0, size: Int32 = 0
        let rc = nanochat_mpi_init(&rank, &size)
        guard rc == 0 else {
            FileHandle.standardError.write(Data("Error: MPI_Init failed: \(World.text(rc))\n".utf8))
            exit(1)
        }
        var host = [CChar](repeating: 0, count: 256)
        nanochat_mpi_host(&host, Int32(host.count))
        return World(rank: Int(rank), size: Int(size), host: cText(host))
    }()

    init(rank: Int, size: Int, host: String) {
        self.rank = rank; self.size = size; self.host = host
    }

    static func text(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        nanochat_mpi_error_string(code, &buffer, Int32(buffer.count))
        return cText(buffer)
    }

    /// Stops every rank: prints `message` (prefixed with this rank) and aborts the job.
    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("Error: rank \(rank) of \(size) (\(host)): \(message)\n".utf8))
        nanochat_mpi_abort(1)
        exit(1)
    }

    /// A failed collective ends the job: a lost rank leaves nothing to continue with.
    func check(_ rc: Int32, _ what: String) {
        if rc != 0 { abort("\(what) failed: \(World.text(rc))") }
    }

    /// Sums the ranks' `send` buffers (rank r's part: `counts[r]` floats, the parts laid end
    /// to end) and leaves this rank's part of the sum in `receive` (MPI_Reduce_scatter).
    public func sumScattered(_ send: UnsafePointer<Float>, into receive: UnsafeMutablePointer<Float>, counts: [Int32]) {
        precondition(counts.count == size)
        check(nanochat_mpi_reduce_scatter_float(send, receive, counts), "summing gradients onto their owners (MPI_Reduce_scatter)")
    }

    /// MPI_Isend.
    public func startSend(_ buffer: UnsafePointer<Float>, count: Int, to rank: Int, tag: Int) -> Int {
        var handle: Int32 = 0
        check(nanochat_mpi_start_send_float(buffer, count, Int32(rank), Int32(tag), &handle),
              "sending \(count) floats to rank \(rank) (MPI_Isend)")
        return Int(handle)
    }

    /// MPI_Irecv.
    public func startReceive(_ buffer: UnsafeMutablePointer<Float>, count: Int, from rank: Int, tag: Int) -> Int {
        var handle: Int32 = 0
        check(nanochat_mpi_start_recv_float(buffer, count, Int32(rank), Int32(tag), &handle),
              "receiving \(count) floats from rank \(rank) (MPI_Irecv)")
        return Int(handle)
    }

    public func isDone(_ handle: Int) -> Bool {
        var done: Int32 = 0
        check(nanochat_mpi_test(Int32(handle), &done), "moving transfers on (MPI_Request_get_status)")
        return done != 0
    }

    public func finish(_ handle: Int) {
        check(nanochat_mpi_wait(Int32(handle)), "waiting for a transfer (MPI_Wait)")
    }

    /// Sums doubles over the ranks.
    public func sum(_ values: [Double]) -> [Double] {
        var v = values
        check(v.withUnsafeMutableBufferPointer { nanochat_mpi_allreduce_sum_double($0.baseAddress, $0.count) },
              "summing (MPI_Allreduce)")
        return v
    }

    /// Each rank's 16-byte value, in rank order.
    public func gather(_ value: (UInt64, UInt64)) -> [(UInt64, UInt64)] {
        var send = [value.0, value.1]
        var receive = [UInt64](repeating: 0, count: 2 * size)
        let rc = send.withUnsafeMutableBytes { s in
            receive.withUnsafeMutableBytes { r in nanochat_mpi_allgather(s.baseAddress, 16, r.baseAddress) }
        }
        check(rc, "comparing the ranks' settings (MPI_Allgather)")
        return (0..<size).map { (receive[2 * $0], receive[2 * $0 + 1]) }
    }

    /// Copies every rank's part of `buffer` (rank r's: `counts[r]` floats, the parts laid end
    /// to end, this rank's already in place) to every rank (MPI_Allgatherv).
    public func gather(_ buffer: UnsafeMutablePointer<Float>, counts: [Int32]) {
        precondition(counts.count == size)
        check(nanochat_mpi_allgather_float(buffer, counts), "sharing updated weights (MPI_Allgatherv)")
    }

    /// Every rank's part of a window of `floats` floats in memory all ranks share, when they
    /// all run on this host (nil when they span hosts, or the MPI library offers no shared
    /// window). Allocated on the first call, which every rank makes at the same point (it is
    /// collective); later calls return the same window, of the size asked for first.
    public func nodeWindow(_ which: NodeWindow, floats: Int) -> [UnsafeMutablePointer<Float>]? {
        if let window = windows[which] { return window.floats == floats ? window.peers : nil }
        var peers = [UnsafeMutablePointer<Float>?](repeating: nil, count: size)
        let rc = nanochat_mpi_node_window(Int32(which.rawValue), floats, &peers)
        let all = peers.compactMap { $0 }
        let window = (floats: floats, peers: rc == 0 && all.count == size ? all : nil)
        windows[which] = window
        return window.peers
    }
    private var windows: [NodeWindow: (floats: Int, peers: [UnsafeMutablePointer<Float>]?)] = [:]

    /// Makes each rank's writes to the window visible to all, once every rank has made them.
    public func syncWindow() {
        check(nanochat_mpi_node_window_sync(), "waiting for the ranks' shared-memory exchange (MPI_Barrier)")
    }

    /// Sends floats to one rank; it must `receive` them.
    public func send(_ buffer: UnsafeMutablePointer<Float>, count: Int, to rank: Int) {
        check(nanochat_mpi_send(buffer, count * 4, Int32(rank)), "MPI_Send")
    }

    public func receive(_ buffer: UnsafeMutablePointer<Float>, count: Int, from rank: Int) {
        check(nanochat_mpi_recv(buffer, count * 4, Int32(rank)), "MPI_Recv")
    }

    /// Which rank owns each of items of the given sizes: largest first, each to the rank
    /// with the least so far (the lowest on ties). Depends on the sizes and rank count only.
    public static func owners(sizes: [Int], ranks: Int) -> [Int] {
        var load = [Int](repeating: 0, count: ranks), owner = [Int](repeating: 0, count: sizes.count)
        for i in sizes.indices.sorted(by: { sizes[$0] != sizes[$1] ? sizes[$0] > sizes[$1] : $0 < $1 }) {
            let r = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 } ?? 0
            owner[i] = r
            load[r] += sizes[i]
        }
        return owner
    }

    /// Waits for every rank.
    public func barrier() { check(nanochat_mpi_barrier(), "MPI_Barrier") }

    public func finalize() { nanochat_mpi_finalize() }
}

/// The text of a NUL-terminated C buffer.
func cText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
