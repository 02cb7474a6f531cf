// Files read in pieces, plain or zstd-compressed, and cut into lines: what the JSONL and text
// readers stand on. Memory holds one piece (a few MB) and the current line.
import CCompression
import Foundation

/// Bytes of a file in order, in pieces.
protocol ByteSource: AnyObject {
    /// Up to `max` more bytes; empty at the end.
    func read(max: Int) throws -> [UInt8]
    /// Bytes of the file (compressed, when it is) consumed so far.
    var consumed: Int { get }
}

final class FileBytes: ByteSource {
    let path: String
    private let fd: Int32
    private(set) var consumed = 0

    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw CorpusError(path: path, "cannot open: \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    func read(max: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: max)
        var n = 0
        while true {
            n = out.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, max) }
            if n >= 0 || errno != EINTR { break }
        }
        guard n >= 0 else { throw CorpusError(path: path, "cannot read: \(String(cString: strerror(errno)))") }
        out.removeLast(max - n)
        consumed += n
        return out
    }
}

/// A zstd-compressed file (one or more frames), decompressed as it is read.
final class ZstdBytes: ByteSource {
    private let file: FileBytes
    private let stream: OpaquePointer
    private var input: [UInt8] = [], inputPosition = 0
    private var frameOpen = false, ended = false
    var consumed: Int { file.consumed }

    init(path: String) throws {
        file = try FileBytes(path: path)
        guard let s = nc_zstd_stream_new() else { throw CorpusError(path: path, "cannot start a zstd stream (out of memory?)") }
        stream = s
    }

    deinit { nc_zstd_stream_free(stream) }

    func read(max: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: max)
        var produced = 0
        while produced == 0 && !ended {
            if inputPosition == input.count {
                input = try file.read(max: 1 << 20)
                inputPosition = 0
                if input.isEmpty {
                    if frameOpen { throw CorpusError(path: file.path, "truncated zstd data: the file ends inside a frame") }
                    ended = true
                    break
                }
            }
            var inPos = inputPosition, outPos = 0
            let rc = input.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    nc_zstd_stream_step(stream, src.baseAddress, src.count, &inPos, dst.baseAddress, max, &outPos)
                }
            }
            guard rc >= 0 else {
                throw CorpusError(path: file.path, "corrupt zstd data near compressed byte \(file.consumed - input.count + inputPosition): \(String(cString: nc_error_text()))")
            }
            frameOpen = rc == 1
            inputPosition = inPos
            produced = outPos
        }
        out.removeLast(max - produced)
        return out
    }
}

/// Lines of a byte source, without their "\n" (a "\r" before it is kept: it is the text's).
public final class LineReader {
    private let source: ByteSource
    private let path: String
    private var buffer: [UInt8] = [], position = 0, scanned = 0, ended = false
    /// 1-based number of the line last returned, and whether a "\n" ended it.
    public private(set) var lineNumber = 0
    private(set) var lastHadNewline = false
    static let pieceBytes = 4 << 20
    /// A line longer than this is refused rather than held (no corpus document is near it).
    static let maxLineBytes = 1 << 30

    init(_ source: ByteSource, path: String) { self.source = source; self.path = path }

    /// The lines of a file, decompressed as read when its name ends in `.zst`.
    public convenience init(path: String) throws {
        self.init(path.lowercased().hasSuffix(".zst") ? try ZstdBytes(path: path) : try FileBytes(path: path), path: path)
    }

    var consumed: Int { source.consumed }

    /// The next line, or nil at the end. A last line without "\n" counts.
    public func next() throws -> ArraySlice<UInt8>? {
        while true {
            if let nl = buffer[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
                defer { position = nl + 1; scanned = position }
                lineNumber += 1
                lastHadNewline = true
                return buffer[position..<nl]
            }
            scanned = buffer.count
            if ended {
                guard position < buffer.count else { return nil }
                defer { position = buffer.count; scanned = position }
                lineNumber += 1
                lastHadNewline = false
                return buffer[position...]
            }
            guard buffer.count - position <= LineReader.maxLineBytes else {
                throw CorpusError(path: path, "line \(lineNumber + 1) is longer than \(LineReader.maxLineBytes >> 20) MB")
            }
            let more = try source.read(max: LineReader.pieceBytes)
            if more.isEmpty { ended = true }
            buffer.removeFirst(position)
            scanned -= position
            position = 0
            buffer += more
        }
    }
}
