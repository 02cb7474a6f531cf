// Documents from corpus files, one at a time, in a fixed order: the inputs as given, a
// directory's or glob's files sorted by name. Formats by name: `.parquet` (a string column),
// `.jsonl` / `.ndjson` (a string field of each line's object), either of those with `.zst`
// (zstd-compressed), anything else plain UTF-8 text. Memory holds one parquet row group or
// one piece of a text file, whatever the corpus size.
import Foundation

/// How a plain text file is cut into documents.
public enum DocumentSplit: String, CaseIterable, Sendable {
    /// The whole file is one document (cut at the document bound).
    case file
    /// Paragraphs separated by blank (whitespace-only) lines; each keeps one trailing newline.
    /// For corpora like tinyshakespeare, where a paragraph is one speech.
    case paragraphs
}

public enum CorpusFormat: String, Sendable {
    case text, jsonl, parquet
}

/// One input file and how it is read.
public struct CorpusFile: Sendable, Equatable {
    public let path: String
    public let format: CorpusFormat
    public let zstd: Bool
    /// Bytes on disk.
    public let size: Int

    public init(path: String) throws {
        self.path = path
        var name = (path as NSString).lastPathComponent.lowercased()
        zstd = name.hasSuffix(".zst")
        if zstd { name.removeLast(4) }
        if name.hasSuffix(".parquet") {
            guard !zstd else { throw CorpusError(path: path, "a zstd-compressed parquet file; parquet compresses its own pages, give the .parquet file") }
            format = .parquet
        } else if name.hasSuffix(".jsonl") || name.hasSuffix(".ndjson") {
            format = .jsonl
        } else {
            format = .text
        }
        var st = stat()
        guard stat(path, &st) == 0 else { throw CorpusError(path: path, "cannot open: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw CorpusError(path: path, "not a regular file") }
        size = Int(st.st_size)
    }

    /// The files named by `inputs`: files as given, directories as their files (not
    /// recursing; hidden files and `.json` metadata left out) sorted by name, and glob patterns
    /// (`*`, `?`, `[`) expanded and sorted. An input that names nothing is an error.
    public static func expand(_ inputs: [String]) throws -> [CorpusFile] {
        var out: [CorpusFile] = []
        for input in inputs {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) {
                if isDirectory.boolValue {
                    let names: [String]
                    do { names = try FileManager.default.contentsOfDirectory(atPath: input) } catch {
                        throw CorpusError(path: input, "cannot list the directory: \(error.localizedDescription)")
                    }
                    let files = names.filter { !$0.hasPrefix(".") && !$0.lowercased().hasSuffix(".json") }.sorted()
                        .map { (input as NSString).appendingPathComponent($0) }
                        .filter { var d: ObjCBool = false; return FileManager.default.fileExists(atPath: $0, isDirectory: &d) && !d.boolValue }
                    guard !files.isEmpty else { throw CorpusError(path: input, "the directory has no files") }
                    out += try files.map { try CorpusFile(path: $0) }
                } else {
                    out.append(try CorpusFile(path: input))
                }
            } else if input.contains(where: { "*?[".contains($0) }) {
                var g = glob_t()
                defer { globfree(&g) }
                guard glob(input, 0, nil, &g) == 0 else { throw CorpusError(path: input, "the pattern matches no file") }
                var paths: [String] = []
                for i in 0..<Int(g.gl_pathc) { if let p = g.gl_pathv[i] { paths.append(String(cString: p)) } }
                out += try paths.sorted().map { try CorpusFile(path: $0) }
            } else {
                throw CorpusError(path: input, "no such file or directory")
            }
        }
        return out
    }
}

public struct DocumentOptions: Sendable {
    /// The parquet column or JSON field holding the text.
    public var field = "text"
    public var split = DocumentSplit.paragraphs
    /// Skip (and count) rows that are null, not UTF-8, not JSON or lack the field, instead
    /// of stopping at the first.
    public var skipBad = false
    /// Documents longer than this many bytes are cut into pieces of at most this size, at a
    /// line break or space near the bound when there is one.
    public var maxDocumentBytes = 1 << 20

    public init(field: String = "text", split: DocumentSplit = .paragraphs, skipBad: Bool = false, maxDocumentBytes: Int = 1 << 20) {
        self.field = field; self.split = split; self.skipBad = skipBad; self.maxDocumentBytes = maxDocumentBytes
    }
}

/// The documents of a list of files, in order.
public final class DocumentStream {
    public let files: [CorpusFile]
    public let options: DocumentOptions
    /// Bytes of all the files on disk.
    public let totalBytes: Int
    /// Documents returned, and rows skipped (with the first few reasons) under `skipBad`.
    public private(set) var documents = 0, skipped = 0
    public private(set) var skipReasons: [String] = []

    private var fileIndex = -1
    private var finishedBytes = 0
    private var reader: (any DocumentReader)?
    private var pending: [String] = []

    public init(files: [CorpusFile], options: DocumentOptions = DocumentOptions()) {
        precondition(options.maxDocumentBytes >= 16, "a document bound of at least 16 bytes")
        self.files = files
        self.options = options
        totalBytes = files.reduce(0) { $0 + $1.size }
    }

    /// Bytes of the files read so far (compressed bytes for compressed files).
    public var bytesRead: Int { finishedBytes + (reader?.consumed ?? 0) }

    /// The file being read, and where in it (a line or row), for messages.
    public var location: String { reader.map { "\($0.path), \($0.place)" } ?? "" }

    /// The next document, or nil after the last.
    public func next() throws -> String? {
        while true {
            if !pending.isEmpty { documents += 1; return pending.removeFirst() }
            if let r = reader {
                switch try r.next() {
                case .document(let text):
                    pending = DocumentStream.cut(text, at: options.maxDocumentBytes)
                case .bad(let reason):
                    guard options.skipBad else { throw CorpusError(path: r.path, "\(r.place): \(reason) (--skip-bad skips such rows)") }
                    skipped += 1
                    if skipReasons.count < 5 { skipReasons.append("\(r.path), \(r.place): \(reason)") }
                case nil:
                    finishedBytes += files[fileIndex].size
                    reader = nil
                }
                continue
            }
            fileIndex += 1
            guard fileIndex < files.count else { return nil }
            let f = files[fileIndex]
            switch f.format {
            case .parquet: reader = try ParquetDocuments(path: f.path, column: options.field)
            case .jsonl: reader = try JSONLDocuments(path: f.path, zstd: f.zstd, field: options.field)
            case .text: reader = try TextDocuments(path: f.path, zstd: f.zstd, split: options.split, bound: options.maxDocumentBytes)
            }
        }
    }

    /// `text` in pieces of at most `bound` UTF-8 bytes: each cut after the last newline in
    /// the piece's second half, else after its last space there, else at a character boundary.
    public static func cut(_ text: String, at bound: Int) -> [String] {
        let utf8 = text.utf8
        guard utf8.count > bound else { return [text] }
        var pieces: [String] = []
        var rest = Substring(text)
        while rest.utf8.count > bound {
            let u = rest.utf8
            var end = u.index(u.startIndex, offsetBy: bound)
            // Back to a character boundary.
            while end > u.startIndex && !rest.unicodeScalars.indices.contains(end) { end = u.index(before: end) }
            let half = u.index(u.startIndex, offsetBy: bound / 2)
            let window = u[half..<end]
            if let nl = window.lastIndex(of: UInt8(ascii: "\n")) {
                end = u.index(after: nl)
            } else if let sp = window.lastIndex(of: UInt8(ascii: " ")) {
                end = u.index(after: sp)
            }
            pieces.append(String(rest[..<end]))
            rest = rest[end...]
        }
        if !rest.isEmpty { pieces.append(String(rest)) }
        return pieces
    }
}

/// What a file reader yields: a document, or a row it could not read (with why).
enum ReadOutcome {
    case document(String)
    case bad(String)
}

protocol DocumentReader: AnyObject {
    var path: String { get }
    /// Where the reader is, for messages: "line 12", "row 3 (row group 0)".
    var place: String { get }
    var consumed: Int { get }
    func next() throws -> ReadOutcome?
}

/// A parquet file's string column, row group by row group.
final class ParquetDocuments: DocumentReader {
    let file: ParquetFile
    var path: String { file.path }
    private var group = -1, rows: [[UInt8]?] = [], row = 0, rowInFile = -1
    private(set) var consumed = 0
    private let groupBytes: [Int]

    init(path: String, column: String) throws {
        let f = try ParquetFile(path: path, column: column)
        file = f
        // Progress in file bytes, counted a row group at a time in proportion to its rows.
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        groupBytes = f.rowGroupRows.map { f.rowCount > 0 ? size * $0 / f.rowCount : 0 }
    }

    var place: String { "row \(rowInFile) (row group \(group))" }

    func next() throws -> ReadOutcome? {
        while row == rows.count {
            group += 1
            guard group < file.rowGroupRows.count else { return nil }
            rows = try file.rows(ofRowGroup: group)
            row = 0
            consumed += groupBytes[group]
        }
        defer { row += 1 }
        rowInFile += 1
        guard let bytes = rows[row] else { return .bad("the \(file.column) value is null") }
        guard let text = String(validating: bytes, as: UTF8.self) else { return .bad("the text is not valid UTF-8") }
        return .document(text)
    }
}

/// A JSONL file: one JSON object per line, its `field` a string. Blank lines are skipped.
final class JSONLDocuments: DocumentReader {
    let path: String
    private let lines: LineReader
    private let field: String
    var consumed: Int { lines.consumed }
    var place: String { "line \(lines.lineNumber)" }

    init(path: String, zstd: Bool, field: String) throws {
        self.path = path
        self.field = field
        lines = LineReader(zstd ? try ZstdBytes(path: path) : try FileBytes(path: path), path: path)
    }

    func next() throws -> ReadOutcome? {
        while let line = try lines.next() {
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) { continue }
            let object: Any
            do { object = try JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed]) } catch {
                return .bad(String(validating: line, as: UTF8.self) == nil ? "not UTF-8" : "not JSON")
            }
            guard let dict = object as? [String: Any] else { return .bad("not a JSON object") }
            guard let value = dict[field] else {
                return .bad("no \"\(field)\" field (it has \(dict.keys.sorted().prefix(8).joined(separator: ", ")); choose one with --field)")
            }
            guard let text = value as? String else { return .bad("the \"\(field)\" field is not a string") }
            return .document(text)
        }
        return nil
    }
}

/// A plain UTF-8 text file, as one document or as paragraphs, either cut at line breaks into
/// pieces of at most `bound` bytes (a single longer line is cut by DocumentStream.cut).
final class TextDocuments: DocumentReader {
    let path: String
    private let lines: LineReader
    private let split: DocumentSplit
    private let bound: Int
    /// A line read but not yet placed: it starts the next piece.
    private var carry: String?
    var consumed: Int { lines.consumed }
    var place: String { "line \(lines.lineNumber)" }

    init(path: String, zstd: Bool, split: DocumentSplit, bound: Int) throws {
        self.path = path
        self.split = split
        self.bound = bound
        lines = LineReader(zstd ? try ZstdBytes(path: path) : try FileBytes(path: path), path: path)
    }

    func next() throws -> ReadOutcome? {
        var current = ""
        if let c = carry { current = c; carry = nil }
        while let raw = try lines.next() {
            guard let text = String(validating: raw, as: UTF8.self) else {
                let at = firstInvalidUTF8(raw)
                return .bad(String(format: "the text is not valid UTF-8 (byte 0x%02x at offset %d of the line)", raw[raw.startIndex + at], at))
            }
            if split == .paragraphs && text.allSatisfy(\.isWhitespace) {
                if !current.isEmpty { return .document(current) }
                continue
            }
            // Lines get back the "\n" the reader took off (paragraphs always end with one; a
            // whole file's last line only if it had one).
            let line = split == .file && !lines.lastHadNewline ? text : text + "\n"
            if !current.isEmpty && current.utf8.count + line.utf8.count > bound {
                carry = line
                return .document(current)
            }
            current += line
        }
        return current.isEmpty ? nil : .document(current)
    }
}

/// Offset of the first byte of `bytes` that does not begin or continue a valid UTF-8 sequence.
func firstInvalidUTF8(_ bytes: ArraySlice<UInt8>) -> Int {
    var decoder = UTF8()
    var iterator = bytes.makeIterator()
    var offset = 0
    while true {
        let before = offset
        switch decoder.decode(&iterator) {
        case .scalarValue(let s): offset += UTF8.width(s)
        case .emptyInput: return offset
        case .error: return before
        }
    }
}
