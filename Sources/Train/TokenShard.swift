// Token shards in llm.c's format (SPEC §3.1): a header of 256 little-endian int32
// ([0] = 20240520 magic, [1] = 1 version, [2] = token count), then uint16 tokens.
// Read through mmap; batches in SPEC §3.2's order.
import Blocks
import Foundation
import Tensor

public struct ShardError: UserFacingError, Equatable {
    public let path: String, message: String
    public init(path: String, _ message: String) { self.path = path; self.message = message }
    public var description: String { "\(path): \(message)" }
}

/// A memory-mapped token shard.
public final class TokenShard: @unchecked Sendable {
    public static let magic: Int32 = 20240520
    public static let headerBytes = 256 * 4

    public let path: String
    /// Number of tokens.
    public let count: Int
    private let mapping: UnsafeMutableRawPointer
    private let mappedBytes: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ShardError(path: path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ShardError(path: path, "cannot stat the file") }
        let size = Int(st.st_size)
        guard size >= TokenShard.headerBytes else {
            throw ShardError(path: path, "too short for a token shard: \(size) bytes, the header alone is \(TokenShard.headerBytes)")
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw ShardError(path: path, "cannot map the file")
        }
        let header = p.assumingMemoryBound(to: Int32.self)
        let (magic, version, n) = (Int32(littleEndian: header[0]), Int32(littleEndian: header[1]), Int(Int32(littleEndian: header[2])))
        func fail(_ m: String) -> ShardError { munmap(p, size); return ShardError(path: path, m) }
        guard magic == TokenShard.magic else { throw fail("bad magic \(magic), expected \(TokenShard.magic): not a token shard") }
        guard version == 1 else { throw fail("unsupported version \(version), expected 1") }
        guard n >= 0, TokenShard.headerBytes + 2 * n == size else {
            throw fail("header says \(n) tokens (\(TokenShard.headerBytes + 2 * n) bytes) but the file has \(size) bytes")
        }
        mapping = p
        mappedBytes = size
        count = n
    }

    deinit { munmap(mapping, mappedBytes) }

    /// The tokens, read in place.
    public var tokens: UnsafeBufferPointer<UInt16> {
        UnsafeBufferPointer(start: (mapping + TokenShard.headerBytes).assumingMemoryBound(to: UInt16.self), count: count)
    }

    /// Checks every token is below `vocabSize`; the error names the first one outside.
    public func validate(vocabSize: Int) throws {
        if let i = tokens.firstIndex(where: { Int(UInt16(littleEndian: $0)) >= vocabSize }) {
            throw ShardError(path: path, "token \(UInt16(littleEndian: tokens[i])) at position \(i) is outside the vocabulary of \(vocabSize); was this shard made with another tokenizer?")
        }
    }

    /// Writes tokens as a shard, atomically, straight from `tokens` (no copy of a shard's
    /// hundreds of MB).
    public static func write(_ tokens: [UInt16], to path: String) throws {
        guard tokens.count <= Int(Int32.max) else {
            throw ShardError(path: path, "\(tokens.count) tokens are more than the \(Int32.max) a shard's header can count")
        }
        var header = [Int32](repeating: 0, count: 256)
        header[0] = magic.littleEndian; header[1] = Int32(1).littleEndian; header[2] = Int32(tokens.count).littleEndian
        try AtomicFile.write(to: path) { fd in
            if let failure = header.withUnsafeBytes({ AtomicFile.writeAll(fd, $0) }) { return failure }
            if UInt16(1).littleEndian == 1 { return tokens.withUnsafeBytes { AtomicFile.writeAll(fd, $0) } }
            // A big-endian host: byte-swapped a megabyte at a time.
            for start in stride(from: 0, to: tokens.count, by: 1 << 19) {
                let piece = tokens[start..<min(start + (1 << 19), tokens.count)].map(\.littleEndian)
                if let failure = piece.withUnsafeBytes({ AtomicFile.writeAll(fd, $0) }) { return failure }
            }
            return nil
        }
    }
}

/// Shards read in order as one stream of tokens (SPEC §3.2): a dataset's train or val split.
/// Batches cross shard boundaries as if the shards were one file.
public final class TokenStream: @unchecked Sendable {
    public let shards: [TokenShard]
    /// Tokens in all the shards.
    public let count: Int
    /// Index in the stream of each shard's first token, then `count`.
    private let starts: [Int]

    public init(shards: [TokenShard]) {
        self.shards = shards
        var starts = [0]
        for s in shards { starts.append(starts.last! + s.count) }
        self.starts = starts
        count = starts.last!
    }

    public convenience init(_ shard: TokenShard) { self.init(shards: [shard]) }

    /// The stream's files, for messages: one path, or the first and the count.
    public var path: String {
        switch shards.count {
        case 0: return "(no shards)"
        case 1: return shards[0].path
        default: return "\(shards[0].path) and \(shards.count - 1) more shard(s)"
        }
    }

    /// The shard holding token `position` and the offset in it (the end maps past the last).
    public func locate(_ position: Int) -> (shard: Int, offset: Int) {
        precondition(position >= 0 && position <= count, "position \(position) outside 0...\(count)")
        var lo = 0, hi = shards.count
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if starts[mid] <= position { lo = mid } else { hi = mid }
        }
        return (lo, position - starts[lo])
    }

    /// Tokens [from, from + n) as Int32, crossing shard boundaries.
    public func tokens(from: Int, count n: Int) -> [Int32] {
        precondition(from >= 0 && n >= 0 && n <= count - from, "tokens \(from)..<\(from + n) outside 0..<\(count)")
        var out: [Int32] = []
        out.reserveCapacity(n)
        var (s, offset) = locate(from)
        while out.count < n {
            let t = shards[s].tokens
            let take = min(n - out.count, t.count - offset)
            for i in offset..<(offset + take) { out.append(Int32(UInt16(littleEndian: t[i]))) }
            s += 1
            offset = 0
        }
        return out
    }
}

/// Batches from a token stream in SPEC §3.2's order: batch k takes the B·T + 1 tokens after
/// batch k-1's; x = buf[:-1] and y = buf[1:] as (B, T).
public struct BatchLoader {
    public let stream: TokenStream
    public let batch: Int, sequence: Int
    /// Index in the stream of the next batch's first token.
    public private(set) var position: Int

    public init(stream: TokenStream, batch: Int, sequence: Int, position: Int = 0) {
        self.stream = stream; self.batch = batch; self.sequence = sequence; self.position = position
    }

    public init(shard: TokenShard, batch: Int, sequence: Int, position: Int = 0) {
        self.init(stream: TokenStream(shard), batch: batch, sequence: sequence, position: position)
    }

    /// Moves past the next batch without reading it (what another rank takes); false when
    /// the stream has fewer than B·T + 1 tokens left.
    public mutating func skip() -> Bool {
        let (n, overflow) = batch.multipliedReportingOverflow(by: sequence)
        guard !overflow, position >= 0, n < stream.count - position else { return false }
        position += n + 1
        return true
    }

    /// The next (x, y), or nil when the stream has fewer than B·T + 1 tokens left.
    public mutating func next() -> (x: IndexTensor, y: IndexTensor)? {
        let (n, overflow) = batch.multipliedReportingOverflow(by: sequence)
        guard !overflow, position >= 0, n < stream.count - position else { return nil }
        let buf = stream.tokens(from: position, count: n + 1)
        position += n + 1
        return (IndexTensor(shape: [batch, sequence], values: Array(buf.dropLast())),
                IndexTensor(shape: [batch, sequence], values: Array(buf.dropFirst())))
    }
}
