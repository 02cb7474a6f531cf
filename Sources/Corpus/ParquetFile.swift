// A parquet reader for what text corpora and benchmark files use: one column read row group
// by row group (so memory holds one column chunk and its values at a time): strings (`text` by
// default), integers (INT32, INT64), or lists of strings (at the top level, or a field of a
// struct, as Hugging Face's datasets nest multiple-choice answers).
//
// Layout (parquet-format): "PAR1", column chunks, the footer (FileMetaData in Thrift's compact
// protocol), its length as u32 LE, "PAR1". A column chunk is a run of pages, each a PageHeader
// then its body: an optional dictionary page (PLAIN values), then data pages, v1 (levels and
// values compressed together, each level run prefixed with its u32 length) or v2 (levels
// uncompressed before the values, their lengths in the header). Values are PLAIN (u32 LE
// length + bytes; an integer's 4 or 8 LE bytes), dictionary indices (a bit-width byte, then
// the RLE/bit-packed hybrid) or, for strings, the DELTA encodings. Levels: an entry's
// definition level counts the optional and repeated elements on its path that are present
// (the highest: a value); its repetition level is 0 where a row starts and 1 for a list's next
// element. What this reader does not handle (deeper nesting, lists of other types, LZO,
// encrypted files) is an error naming it and the file, never wrong values.
import CCompression
import Foundation

public struct CorpusError: Error, CustomStringConvertible, Equatable {
    public let path: String, message: String
    public init(path: String, _ message: String) { self.path = path; self.message = message }
    public var description: String { "\(path): \(message)" }
}

/// An open parquet file and the string column it reads.
public final class ParquetFile {
    public let path: String
    /// Rows in the file, and in each row group.
    public let rowCount: Int
    public let rowGroupRows: [Int]
    /// Uncompressed bytes of the column's pages in all row groups (about its text's size).
    public var uncompressedBytes: Int { chunks.reduce(0) { $0 + Int(clamping: max(0, $1.uncompressedSize)) } }
    /// The column read, and whether it may hold nulls.
    public let column: String
    public let optional: Bool
    /// What the column holds.
    public enum Shape: Sendable, Equatable {
        /// A string (BYTE_ARRAY) per row.
        case strings
        /// A list of strings per row (a LIST of byte arrays, at the top level or in a struct).
        case stringLists
        /// An integer (INT32 or INT64) per row.
        case integers
    }
    public let shape: Shape
    /// Definition and repetition levels: the column's highest, and the definition level of its
    /// repeated group (a list with that level or more is present, one below it is empty).
    let maxDefinition: Int, maxRepetition: Int, listDefinition: Int
    /// Physical type (parquet's Type: 1 INT32, 2 INT64, 6 BYTE_ARRAY).
    let physicalType: Int32

    private let handle: FileHandle
    private let fileSize: Int
    private let chunks: [ColumnChunk]

    /// Compression codecs by their parquet number.
    enum Codec: Int32 {
        case uncompressed = 0, snappy = 1, gzip = 2, lzo = 3, brotli = 4, lz4 = 5, zstd = 6, lz4Raw = 7
    }

    struct ColumnChunk {
        var codec: Int32 = -1
        var valueCount: Int64 = -1
        var compressedSize: Int64 = -1
        var uncompressedSize: Int64 = 0
        var dataPageOffset: Int64 = -1
        var dictionaryPageOffset: Int64?
        var path: [String] = []
        var type: Int32 = -1
    }

    /// A footer over 256 MB is not a corpus file's (FineWeb's are a few hundred KB).
    static let maxFooterBytes = 256 << 20
    /// A page over 1 GiB is refused before allocating it.
    static let maxPageBytes = 1 << 30

    /// Opens `path` and finds `column`, of one of the `accepted` shapes: a top-level string
    /// (BYTE_ARRAY) or integer column, or a list of strings (at the top level, or
    /// `struct.field` one struct deep).
    /// `missing` ends the error for a column the file does not have.
    public init(path: String, column: String = "text", accepting accepted: Set<Shape> = [.strings],
                missing: String = " (choose one with --field)") throws {
        self.path = path
        self.column = column
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CorpusError(path: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        self.handle = handle
        let size: Int
        do { size = Int(try handle.seekToEnd()) } catch { throw CorpusError(path: path, "cannot read: \(error.localizedDescription)") }
        fileSize = size
        func fail(_ m: String) -> CorpusError { CorpusError(path: path, m) }
        guard size >= 12 else { throw fail("\(size) bytes is too short for a parquet file (it needs at least 12)") }
        let tail = try ParquetFile.read(handle, path: path, at: size - 8, count: 8)
        guard Array(tail[4..<8]) == Array("PAR1".utf8) else {
            if Array(tail[4..<8]) == Array("PARE".utf8) { throw fail("an encrypted parquet file; encryption is not supported") }
            throw fail("not a parquet file: it does not end with PAR1")
        }
        let footerLength = Int(UInt32(tail[0]) | UInt32(tail[1]) << 8 | UInt32(tail[2]) << 16 | UInt32(tail[3]) << 24)
        guard footerLength <= min(size - 12, ParquetFile.maxFooterBytes) else {
            throw fail("the footer length \(footerLength) does not fit the file's \(size) bytes")
        }
        let head = try ParquetFile.read(handle, path: path, at: 0, count: 4)
        guard head == Array("PAR1".utf8) else { throw fail("not a parquet file: it does not start with PAR1") }
        let footer = try ParquetFile.read(handle, path: path, at: size - 8 - footerLength, count: footerLength)

        // FileMetaData: 2 schema, 3 num_rows, 4 row_groups.
        var schema: [(name: String, repetition: Int32, children: Int32, type: Int32)] = []
        var rows: Int64 = -1
        var groups: [(rows: Int64, chunks: [ColumnChunk])] = []
        do {
            try footer.withUnsafeBytes { raw in
                var r = ThriftReader(raw)
                try r.readStruct { r, id, type in
                    switch (id, type) {
                    case (2, .list): schema = try r.structList(ParquetFile.schemaElement)
                    case (3, .i64): rows = try r.i64()
                    case (4, .list): groups = try r.structList(ParquetFile.rowGroup)
                    default: try r.skip(type)
                    }
                }
            }
        } catch let e as ThriftError {
            throw fail("the footer is malformed: \(e.message)")
        }
        guard rows >= 0, let root = schema.first else { throw fail("the footer has no schema or row count") }

        // Leaf columns in schema order (depth-first), each with its path and the repetition
        // of every element on it (0 required, 1 optional, 2 repeated).
        var leaves: [(path: [String], repetitions: [Int32], type: Int32)] = []
        var index = 1
        // Bounded: real schemas nest a few levels, and a crafted one must not exhaust the stack.
        let maxNesting = 64
        func walk(_ count: Int32, _ prefix: [String], _ repetitions: [Int32]) throws {
            guard prefix.count < maxNesting else { throw fail("the schema nests more than \(maxNesting) levels deep") }
            for _ in 0..<max(0, Int(count)) {
                guard index < schema.count else { throw fail("the schema's child counts run past its \(schema.count) elements") }
                let e = schema[index]
                index += 1
                if e.children > 0 {
                    try walk(e.children, prefix + [e.name], repetitions + [e.repetition])
                } else {
                    leaves.append((prefix + [e.name], repetitions + [e.repetition], e.type))
                }
            }
        }
        try walk(root.children, [], [])
        let names = leaves.map { leaf -> String in
            let name = leaf.path.joined(separator: ".")
            return name.count > 60 ? String(name.prefix(57)) + "..." : name
        }
        // The column: a top-level leaf of that name; else a list under that path (one struct
        // deep at most): a LIST group whose repeated child holds one string leaf.
        let wanted = leaves.contains { $0.path == [column] } ? [column] : column.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let under = leaves.indices.filter { Array(leaves[$0].path.prefix(wanted.count)) == wanted }
        guard !under.isEmpty else {
            throw fail("no column \"\(column)\"; the file has \(names.prefix(20).joined(separator: ", "))\(names.count > 20 ? ", ..." : "")\(missing)")
        }
        guard under.count == 1, let columnIndex = under.first else {
            throw fail("column \"\(column)\" is a struct of \(under.count) fields (\(under.prefix(6).map { names[$0] }.joined(separator: ", "))); name one of them")
        }
        let leaf = leaves[columnIndex]
        let repeats = leaf.repetitions.filter { $0 == 2 }.count
        if leaf.path.count == wanted.count && wanted.count == 1 {
            guard repeats == 0 else { throw fail("column \"\(column)\" is repeated; only a plain or list column can be read") }
            switch leaf.type {
            case 6: shape = .strings
            case 1 where accepted.contains(.integers), 2 where accepted.contains(.integers): shape = .integers
            default:
                throw fail("column \"\(column)\" has physical type \(ParquetFile.typeName(leaf.type)), not a string (BYTE_ARRAY)\(accepted.contains(.integers) ? " or integer" : "")")
            }
        } else {
            guard accepted.contains(.stringLists) else {
                throw fail("column \"\(column)\" is nested (a struct or list); only a top-level string column can be read")
            }
            // A list: exactly one repeated element, directly under the named group: the
            // three-level LIST layout (group (LIST) / repeated group / element) or the
            // two-level legacy one (group / repeated leaf). A leaf named by its whole dotted
            // path has no level under it.
            guard wanted.count <= 2, repeats == 1, leaf.path.count > wanted.count, leaf.path.count - wanted.count <= 2,
                  leaf.repetitions[wanted.count] == 2 else {
                throw fail("column \"\(column)\" is nested (\(names[columnIndex])) in a way this reader does not read: only strings, integers and lists of strings")
            }
            guard leaf.type == 6 else {
                throw fail("column \"\(column)\" is a list of \(ParquetFile.typeName(leaf.type)), not of strings (BYTE_ARRAY)")
            }
            shape = .stringLists
        }
        guard accepted.contains(shape) else {
            throw fail("column \"\(column)\" holds \(shape == .strings ? "strings" : "integers"), which this input does not take")
        }
        physicalType = leaf.type
        maxDefinition = leaf.repetitions.filter { $0 != 0 }.count
        maxRepetition = repeats
        if let r = leaf.repetitions.firstIndex(of: 2) {
            listDefinition = leaf.repetitions[...r].filter { $0 != 0 }.count
        } else {
            listDefinition = maxDefinition
        }
        optional = maxDefinition > 0

        var chunks: [ColumnChunk] = []
        for (g, group) in groups.enumerated() {
            guard group.rows >= 0 else { throw fail("row group \(g) lacks its row count (num_rows), or it is negative") }
            guard group.chunks.count == leaves.count else {
                throw fail("row group \(g) has \(group.chunks.count) column chunks for \(leaves.count) columns")
            }
            let c = group.chunks[columnIndex]
            guard c.path == leaf.path else {
                throw fail("row group \(g)'s chunk \(columnIndex) is for \(c.path.joined(separator: ".")), not \(leaf.path.joined(separator: "."))")
            }
            // A list column has an entry per element (and per empty or null list), at least one per row.
            guard maxRepetition > 0 ? c.valueCount >= group.rows : c.valueCount == group.rows else {
                throw fail("row group \(g) has \(group.rows) rows but its \(column) chunk \(c.valueCount) values")
            }
            chunks.append(c)
        }
        guard groups.reduce(0, { $0 + $1.rows }) == rows else { throw fail("the row groups' rows do not add up to the file's \(rows)") }
        self.chunks = chunks
        rowCount = Int(rows)
        rowGroupRows = groups.map { Int($0.rows) }
    }

    deinit { try? handle.close() }

    /// The string column's values in row group `group`, in row order: the bytes of each
    /// string, nil for a null.
    public func rows(ofRowGroup group: Int) throws -> [[UInt8]?] {
        guard shape == .strings else { throw CorpusError(path: path, "column \"\(column)\" holds \(shape), not strings") }
        return try flat(group)
    }

    /// The integer column's values in row group `group`, in row order; nil for a null.
    public func integers(ofRowGroup group: Int) throws -> [Int64?] {
        guard shape == .integers else { throw CorpusError(path: path, "column \"\(column)\" holds \(shape), not integers") }
        return try flat(group).map { bytes in
            bytes.map { b in b.reversed().reduce(Int64(0)) { $0 << 8 | Int64($1) } }.map { physicalType == 1 ? Int64(Int32(truncatingIfNeeded: $0)) : $0 }
        }
    }

    /// The list column's values in row group `group`, in row order: each row's strings (nil
    /// for a null string), [] for an empty list, nil for a null one.
    public func lists(ofRowGroup group: Int) throws -> [[[UInt8]?]?] {
        guard shape == .stringLists else { throw CorpusError(path: path, "column \"\(column)\" holds \(shape), not lists of strings") }
        let levels = try decode(group)
        guard let repetition = levels.repetition, let definition = levels.definition else { return [] }
        var rows: [[[UInt8]?]?] = []
        var next = 0
        for (r, d) in zip(repetition, definition) {
            let level = Int(d)
            // A row starts at repetition level 0: a list (empty up to here) when every group
            // above its elements is present, else null.
            if r == 0 { rows.append(level >= listDefinition - 1 ? [] : nil) }
            guard level >= listDefinition else {
                if r != 0 { throw CorpusError(path: path, "row group \(group), column \(column): an empty or null list continues a row") }
                continue
            }
            guard rows.last.map({ $0 != nil }) == true else {
                throw CorpusError(path: path, "row group \(group), column \(column): a list element continues a null list")
            }
            if level == maxDefinition {
                rows[rows.count - 1]?.append(levels.values[next]); next += 1
            } else {
                rows[rows.count - 1]?.append(nil)
            }
        }
        guard rows.count == rowGroupRows[group] else {
            throw CorpusError(path: path, "row group \(group), column \(column): \(rows.count) rows where the footer says \(rowGroupRows[group])")
        }
        return rows
    }

    /// A flat column's values: present where the definition level is the highest.
    private func flat(_ group: Int) throws -> [[UInt8]?] {
        let levels = try decode(group)
        guard let definition = levels.definition else { return levels.values.map { Optional($0) } }
        var rows: [[UInt8]?] = []
        rows.reserveCapacity(definition.count)
        var next = 0
        let top = UInt32(maxDefinition)
        for level in definition {
            if level == top { rows.append(levels.values[next]); next += 1 } else { rows.append(nil) }
        }
        return rows
    }

    /// The chunk of row group `group` decoded to its levels and values.
    private func decode(_ group: Int) throws -> ColumnChunkDecoder.Levels {
        precondition(group >= 0 && group < chunks.count, "row group \(group) of \(chunks.count)")
        let c = chunks[group]
        let place = "row group \(group), column \(column)"
        func fail(_ m: String) -> CorpusError { CorpusError(path: path, "\(place): \(m)") }
        // An empty row group (pyarrow writes one for an empty table) has no pages to read,
        // whatever offsets its chunk states.
        if c.valueCount == 0 { return ColumnChunkDecoder.Levels() }
        guard let codec = Codec(rawValue: c.codec) else { throw fail("unknown compression codec \(c.codec)") }
        switch codec {
        case .uncompressed, .snappy, .gzip, .zstd, .lz4Raw, .lz4, .brotli: break
        case .lzo: throw fail("compression LZO is not supported (only none, Snappy, gzip, zstd, LZ4 and Brotli)")
        }
        var start = c.dataPageOffset
        if let d = c.dictionaryPageOffset, d > 0, d < start { start = d }
        guard start >= 4, c.compressedSize >= 0, start <= Int64(fileSize), c.compressedSize <= Int64(fileSize) - start else {
            throw fail("the column chunk (\(c.compressedSize) bytes at \(start)) lies outside the file's \(fileSize) bytes")
        }
        let bytes = try ParquetFile.read(handle, path: path, at: Int(start), count: Int(c.compressedSize))
        do {
            return try bytes.withUnsafeBytes { raw in
                try ColumnChunkDecoder(bytes: raw, codec: codec, maxDefinition: maxDefinition, maxRepetition: maxRepetition,
                                       valueCount: Int(c.valueCount),
                                       fixedWidth: physicalType == 1 ? 4 : physicalType == 2 ? 8 : nil).decode()
            }
        } catch let e as ThriftError {
            throw fail("a page header is malformed: \(e.message)")
        } catch let e as PageError {
            throw fail(e.message)
        }
    }

    // MARK: - Footer structs

    /// SchemaElement: 1 type, 3 repetition_type, 4 name, 5 num_children.
    static func schemaElement(_ r: inout ThriftReader) throws -> (name: String, repetition: Int32, children: Int32, type: Int32) {
        var e = (name: "", repetition: Int32(0), children: Int32(0), type: Int32(-1))
        try r.readStruct { r, id, type in
            switch (id, type) {
            case (1, .i32): e.type = try r.i32()
            case (3, .i32): e.repetition = try r.i32()
            case (4, .binary): e.name = try r.string()
            case (5, .i32): e.children = try r.i32()
            default: try r.skip(type)
            }
        }
        return e
    }

    /// RowGroup: 1 columns, 3 num_rows.
    static func rowGroup(_ r: inout ThriftReader) throws -> (rows: Int64, chunks: [ColumnChunk]) {
        var g = (rows: Int64(-1), chunks: [ColumnChunk]())
        try r.readStruct { r, id, type in
            switch (id, type) {
            case (1, .list): g.chunks = try r.structList(columnChunk)
            case (3, .i64): g.rows = try r.i64()
            default: try r.skip(type)
            }
        }
        return g
    }

    /// ColumnChunk: 1 file_path (data in another file: unsupported), 3 meta_data, which is
    /// ColumnMetaData: 1 type, 3 path_in_schema, 4 codec, 5 num_values, 6 total_uncompressed_size,
    /// 7 total_compressed_size,
    /// 9 data_page_offset, 11 dictionary_page_offset.
    static func columnChunk(_ r: inout ThriftReader) throws -> ColumnChunk {
        var c = ColumnChunk(), external = false, crypto = false
        try r.readStruct { r, id, type in
            switch (id, type) {
            case (1, .binary): external = true; try r.skip(type)
            case (3, .structure):
                try r.readStruct { r, id, type in
                    switch (id, type) {
                    case (1, .i32): c.type = try r.i32()
                    case (3, .list): c.path = try r.stringList()
                    case (4, .i32): c.codec = try r.i32()
                    case (5, .i64): c.valueCount = try r.i64()
                    case (6, .i64): c.uncompressedSize = try r.i64()
                    case (7, .i64): c.compressedSize = try r.i64()
                    case (9, .i64): c.dataPageOffset = try r.i64()
                    case (11, .i64): c.dictionaryPageOffset = try r.i64()
                    default: try r.skip(type)
                    }
                }
            case (8, _), (9, _): crypto = true; try r.skip(type)
            default: try r.skip(type)
            }
        }
        if external { throw ThriftError("a column chunk stored in another file (file_path) is not supported") }
        if crypto { throw ThriftError("an encrypted column is not supported") }
        guard c.valueCount >= 0, c.compressedSize >= 0, c.dataPageOffset >= 0 else {
            throw ThriftError("a column chunk lacks its metadata (values, size or offset)")
        }
        return c
    }

    static func typeName(_ t: Int32) -> String {
        let names = ["BOOLEAN", "INT32", "INT64", "INT96", "FLOAT", "DOUBLE", "BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY"]
        return names.indices.contains(Int(t)) ? names[Int(t)] : "type \(t)"
    }

    static func read(_ handle: FileHandle, path: String, at offset: Int, count: Int) throws -> [UInt8] {
        do {
            try handle.seek(toOffset: UInt64(offset))
            let data = try handle.read(upToCount: count) ?? Data()
            guard data.count == count else {
                throw CorpusError(path: path, "truncated: \(count) bytes wanted at offset \(offset), \(data.count) there")
            }
            return [UInt8](data)
        } catch let e as CorpusError {
            throw e
        } catch {
            throw CorpusError(path: path, "cannot read: \(error.localizedDescription)")
        }
    }
}
