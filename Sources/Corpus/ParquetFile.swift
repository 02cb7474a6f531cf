// A parquet reader for what text corpora use: one string column (`text` by default) read row
// group by row group, so memory holds one column chunk and its strings at a time.
//
// Layout (parquet-format): "PAR1", column chunks, the footer (FileMetaData in Thrift's compact
// protocol), its length as u32 LE, "PAR1". A column chunk is a run of pages, each a PageHeader
// then its body: an optional dictionary page (PLAIN byte arrays), then data pages, v1 (levels
// and values compressed together, each level run prefixed with its u32 length) or v2 (levels
// uncompressed before the values, their lengths in the header). Values are PLAIN (u32 LE
// length + bytes) or dictionary indices (a bit-width byte, then the RLE/bit-packed hybrid).
// An optional column has definition levels (1 = present, 0 = null). What this reader does not
// handle (nested or repeated columns, DELTA encodings, LZ4/Brotli/LZO, encrypted files) is an
// error naming it and the file, never wrong text.
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

    /// Opens `path` and finds `column`, a top-level string (BYTE_ARRAY) column.
    public init(path: String, column: String = "text") throws {
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

        // Leaf columns in schema order (depth-first), each with its top-level path.
        var leaves: [(path: [String], repetition: Int32, type: Int32)] = []
        var index = 1
        // Bounded: real schemas nest a few levels, and a crafted one must not exhaust the stack.
        let maxNesting = 64
        func walk(_ count: Int32, _ prefix: [String], _ ancestorRepeated: Bool) throws {
            guard prefix.count < maxNesting else { throw fail("the schema nests more than \(maxNesting) levels deep") }
            for _ in 0..<max(0, Int(count)) {
                guard index < schema.count else { throw fail("the schema's child counts run past its \(schema.count) elements") }
                let e = schema[index]
                index += 1
                if e.children > 0 {
                    try walk(e.children, prefix + [e.name], ancestorRepeated || e.repetition == 2)
                } else {
                    leaves.append((prefix + [e.name], ancestorRepeated ? 2 : e.repetition, e.type))
                }
            }
        }
        try walk(root.children, [], false)
        guard let columnIndex = leaves.firstIndex(where: { $0.path == [column] }) else {
            let names = leaves.map { leaf -> String in
                let name = leaf.path.joined(separator: ".")
                return name.count > 60 ? String(name.prefix(57)) + "..." : name
            }
            if leaves.contains(where: { $0.path.first == column }) {
                throw fail("column \"\(column)\" is nested (a struct or list); only a top-level string column can be read")
            }
            throw fail("no column \"\(column)\"; the file has \(names.prefix(20).joined(separator: ", "))\(names.count > 20 ? ", ..." : "") (choose one with --field)")
        }
        let leaf = leaves[columnIndex]
        guard leaf.type == 6 else {
            throw fail("column \"\(column)\" has physical type \(ParquetFile.typeName(leaf.type)), not a string (BYTE_ARRAY)")
        }
        guard leaf.repetition != 2 else { throw fail("column \"\(column)\" is repeated (a list); only a plain string column can be read") }
        optional = leaf.repetition == 1

        var chunks: [ColumnChunk] = []
        for (g, group) in groups.enumerated() {
            guard group.chunks.count == leaves.count else {
                throw fail("row group \(g) has \(group.chunks.count) column chunks for \(leaves.count) columns")
            }
            let c = group.chunks[columnIndex]
            guard c.path == [column] else { throw fail("row group \(g)'s chunk \(columnIndex) is for \(c.path.joined(separator: ".")), not \(column)") }
            guard c.valueCount == group.rows else {
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

    /// The column's values in row group `group`, in row order: the bytes of each string, nil
    /// for a null.
    public func rows(ofRowGroup group: Int) throws -> [[UInt8]?] {
        precondition(group >= 0 && group < chunks.count, "row group \(group) of \(chunks.count)")
        let c = chunks[group]
        let place = "row group \(group), column \(column)"
        func fail(_ m: String) -> CorpusError { CorpusError(path: path, "\(place): \(m)") }
        // An empty row group (pyarrow writes one for an empty table) has no pages to read,
        // whatever offsets its chunk states.
        if c.valueCount == 0 { return [] }
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
                try ColumnChunkDecoder(bytes: raw, codec: codec, optional: optional, valueCount: Int(c.valueCount)).decode()
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
