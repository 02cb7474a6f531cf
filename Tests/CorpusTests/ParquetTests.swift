// The parquet reader against files pyarrow wrote (tools/parquet_fixtures.py): every
// compression (none, Snappy, gzip, zstd, LZ4, Brotli), both data page versions, dictionary on
// and off, the delta encodings, DuckDB's V2 files, nulls, several row groups and pages. Each
// must read back to exactly the strings pyarrow wrote; what the reader does not handle must
// be an error naming it, never wrong text.
import CCompression
import Corpus
import Foundation
import Testing

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

/// expected.json: "rows" (with nulls) and "required" (none).
func expectedRows() throws -> (rows: [String?], required: [String]) {
    let data = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/parquet/expected.json"))
    let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    let rows = try #require(object["rows"] as? [Any]).map { $0 as? String }
    let required = try #require(object["required"] as? [String])
    return (rows, required)
}

/// The footer's length, from the little-endian int32 before a parquet file's closing "PAR1".
func footerLength(_ bytes: [UInt8]) -> Int {
    Int(bytes[bytes.count - 8]) | Int(bytes[bytes.count - 7]) << 8
        | Int(bytes[bytes.count - 6]) << 16 | Int(bytes[bytes.count - 5]) << 24
}

/// none-v1-plain.parquet with its footer's first byte (0x15: the version field, id delta 1,
/// type i32) replaced by `fields`, the footer length fixed, written to a temporary file whose
/// path is returned.
func plainFileWithFooterStart(_ fields: [UInt8], tag: String) throws -> String {
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/parquet/none-v1-plain.parquet")))
    let length = footerLength(bytes)
    let footer = bytes.count - 8 - length
    try #require(bytes[footer] == 0x15)
    bytes.replaceSubrange(footer..<(footer + 1), with: fields)
    let grown = length + fields.count - 1
    bytes.replaceSubrange((bytes.count - 8)..<(bytes.count - 4), with: [0, 8, 16, 24].map { UInt8((grown >> $0) & 0xff) })
    let path = NSTemporaryDirectory() + "nanochat-\(tag)-\(getpid()).parquet"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

func readAll(_ file: ParquetFile) throws -> [String?] {
    var out: [String?] = []
    for g in 0..<file.rowGroupRows.count {
        for bytes in try file.rows(ofRowGroup: g) {
            out.append(try bytes.map { try #require(String(validating: $0, as: UTF8.self)) })
        }
    }
    return out
}

@Suite struct ParquetTests {
    /// Every codec, page version and dictionary choice; and the file in format version 1.0,
    /// whose dictionary pages and indices are PLAIN_DICTIONARY.
    static let variants: [String] = ["none", "snappy", "gzip", "zstd"].flatMap { codec in
        ["v1", "v2"].flatMap { page in ["dict", "plain"].map { "\(codec)-\(page)-\($0)" } }
    } + ["format1-v1-dict"]

    @Test(arguments: variants) func readsExactlyWhatPyarrowWrote(variant: String) throws {
        let file = try ParquetFile(path: "\(fixtures)/parquet/\(variant).parquet")
        let expected = try expectedRows().rows
        #expect(file.optional)
        #expect(file.rowCount == expected.count)
        #expect(file.rowGroupRows.count == 3, "the fixtures hold 40 rows in row groups of 16")
        let rows = try readAll(file)
        #expect(rows.count == expected.count)
        for (i, (got, want)) in zip(rows, expected).enumerated() where got != want {
            Issue.record("row \(i): \(String(describing: got?.prefix(60))) != \(String(describing: want?.prefix(60)))")
        }
    }

    /// The text column's uncompressed size (what `prepare` estimates its progress and the
    /// validation hold-out from): the column chunks' total_uncompressed_size over every row
    /// group, as pyarrow's metadata reports it for each file.
    @Test func theTextColumnsUncompressedSizeIsTheSumOverRowGroups() throws {
        let sizes = ["none-v1-dict": 5652, "none-v2-plain": 6284, "gzip-v1-plain": 6281, "zstd-v2-dict": 5655,
                     "delta-length-v1": 6311, "duckdb-v2": 6196, "long-runs-v2": 1243, "empty": 14, "required": 5577]
        for (name, bytes) in sizes {
            #expect(try ParquetFile(path: "\(fixtures)/parquet/\(name).parquet").uncompressedBytes == bytes, "\(name)")
        }
    }

    /// The delta encodings of strings (lengths, or prefixes shared with the string before),
    /// in both page versions, and a file DuckDB wrote with PARQUET_VERSION V2: the same rows.
    @Test(arguments: ["delta-length-v1", "delta-length-v2", "delta-prefix-v1", "delta-prefix-v2", "delta-prefix-none", "duckdb-v2"])
    func readsDeltaEncodedStrings(name: String) throws {
        let file = try ParquetFile(path: "\(fixtures)/parquet/\(name).parquet")
        let expected = try expectedRows().rows
        let rows = try readAll(file)
        #expect(rows.count == expected.count && file.rowCount == expected.count)
        for (i, (got, want)) in zip(rows, expected).enumerated() where got != want {
            Issue.record("\(name) row \(i): \(String(describing: got?.prefix(60))) != \(String(describing: want?.prefix(60)))")
        }
    }

    /// A delta-encoded page whose eight rows are all null holds a delta header of no values:
    /// it adds no string, and the page after it reads as written (see
    /// `tools/parquet_fixtures.py delta-null-pages`).
    @Test(arguments: ["length-v1", "length-v2", "prefix-v1", "prefix-v2"]) func aDeltaPageOfNullsAddsNoString(name: String) throws {
        let file = try ParquetFile(path: "\(fixtures)/parquet/delta-null-pages-\(name).parquet")
        let expected: [String?] = (0..<24).map { 8 <= $0 && $0 < 16 ? nil : "line \($0)" }
        #expect(try readAll(file) == expected)
    }

    /// LZ4 (pyarrow writes LZ4_RAW) and Brotli pages, in both page versions: the same rows.
    @Test(arguments: ["lz4-v1", "lz4-v2", "brotli-v1", "brotli-v2"]) func readsLZ4AndBrotli(name: String) throws {
        let file = try ParquetFile(path: "\(fixtures)/parquet/\(name).parquet")
        let rows = try readAll(file)
        #expect(rows == (try expectedRows().rows), "\(name)")
    }

    /// Parquet's older LZ4 codec: Hadoop's framing (big-endian uncompressed and compressed
    /// sizes before each block), several blocks; or else one raw block, as older writers
    /// meant it. LZ4 blocks of literals only are written by hand here (a token of the
    /// literal count, then the bytes).
    @Test func lz4ReadsHadoopFramesAndRawBlocks() throws {
        func literals(_ text: String) -> [UInt8] {
            let bytes = Array(text.utf8)
            precondition(bytes.count < 15)
            return [UInt8(bytes.count << 4)] + bytes
        }
        func bigEndian(_ n: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8((n >> $0) & 0xff) } }
        func decode(_ f: (UnsafeRawPointer?, Int, UnsafeMutableRawPointer?, Int, UnsafeMutablePointer<Int>) -> Int32,
                    _ input: [UInt8], size: Int) -> [UInt8]? {
            var out = [UInt8](repeating: 0, count: size), written = 0
            let rc = input.withUnsafeBytes { src in out.withUnsafeMutableBytes { dst in f(src.baseAddress, src.count, dst.baseAddress, size, &written) } }
            return rc == 0 && written == size ? out : nil
        }
        let hadoop: (UnsafeRawPointer?, Int, UnsafeMutableRawPointer?, Int, UnsafeMutablePointer<Int>) -> Int32 = { nc_lz4_hadoop($0, $1, $2, $3, $4) }
        let raw: (UnsafeRawPointer?, Int, UnsafeMutableRawPointer?, Int, UnsafeMutablePointer<Int>) -> Int32 = { nc_lz4_raw($0, $1, $2, $3, $4) }
        let a = literals("First "), b = literals("Citizen")
        let framed = bigEndian(6) + bigEndian(a.count) + a + bigEndian(7) + bigEndian(b.count) + b
        #expect(decode(hadoop, framed, size: 13) == Array("First Citizen".utf8))
        #expect(decode(hadoop, a, size: 6) == Array("First ".utf8), "a raw block under the old codec")
        #expect(decode(raw, a, size: 6) == Array("First ".utf8))
        // Frames that claim more than they hold, and a block cut short, are errors.
        #expect(decode(hadoop, Array(framed.dropLast(2)), size: 13) == nil)
        #expect(decode(raw, Array(a.dropLast()), size: 6) == nil)
        #expect(decode(raw, a, size: 5) == nil)
    }

    /// Every codec, given a whole stream of 13 bytes and room for 21, answers 0 and says it
    /// wrote 13 (a page that decompresses to less than its header says is refused naming the
    /// count it did come to). The streams are "First Citizen" as Python's gzip and pyarrow's
    /// zstd and brotli write it, and hand-made snappy and LZ4 blocks of one literal run.
    @Test func everyCodecSaysHowManyBytesItWrote() {
        typealias Codec = (UnsafeRawPointer?, Int, UnsafeMutableRawPointer?, Int, UnsafeMutablePointer<Int>) -> Int32
        let text = Array("First Citizen".utf8)
        let gzip: [UInt8] = [31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 115, 203, 44, 42, 46, 81, 112, 206, 44, 201, 172, 74, 205, 3, 0,
                             128, 138, 108, 179, 13, 0, 0, 0]
        let zstd: [UInt8] = [40, 181, 47, 253, 32, 13, 105, 0, 0] + text
        let brotli: [UInt8] = [11, 6, 128] + text + [3]
        let snappy: [UInt8] = [13, 12 << 2] + text          // length 13, then one literal of 13
        let lz4: [UInt8] = [13 << 4] + text                 // a last sequence of 13 literals
        let cases: [(String, Codec, [UInt8])] = [
            ("gzip", { nc_gunzip($0, $1, $2, $3, $4) }, gzip), ("zstd", { nc_zstd($0, $1, $2, $3, $4) }, zstd),
            ("brotli", { nc_brotli($0, $1, $2, $3, $4) }, brotli), ("snappy", { nc_snappy($0, $1, $2, $3, $4) }, snappy),
            ("lz4 raw", { nc_lz4_raw($0, $1, $2, $3, $4) }, lz4), ("lz4 hadoop", { nc_lz4_hadoop($0, $1, $2, $3, $4) }, lz4),
        ]
        for (name, codec, input) in cases {
            var out = [UInt8](repeating: 0, count: text.count + 8), written = -7
            let rc = input.withUnsafeBytes { src in out.withUnsafeMutableBytes { dst in codec(src.baseAddress, src.count, dst.baseAddress, dst.count, &written) } }
            #expect(rc == 0 && written == text.count, "\(name): returned \(rc), wrote \(written) (\(String(cString: nc_error_text())))")
            #expect(Array(out.prefix(text.count)) == text && out.dropFirst(text.count).allSatisfy { $0 == 0 }, "\(name)")
        }
    }

    /// Every codec, given bytes that are none of its data, answers -1 and an error text that
    /// names it (what a page of another codec, or a corrupted one, reads as).
    @Test func everyCodecRefusesWhatIsNotItsDataByName() {
        typealias Codec = (UnsafeRawPointer?, Int, UnsafeMutableRawPointer?, Int, UnsafeMutablePointer<Int>) -> Int32
        let codecs: [(String, Codec)] = [
            ("snappy: ", { nc_snappy($0, $1, $2, $3, $4) }), ("gzip: ", { nc_gunzip($0, $1, $2, $3, $4) }),
            ("zstd: ", { nc_zstd($0, $1, $2, $3, $4) }), ("lz4: ", { nc_lz4_raw($0, $1, $2, $3, $4) }),
            ("lz4: ", { nc_lz4_hadoop($0, $1, $2, $3, $4) }), ("brotli: ", { nc_brotli($0, $1, $2, $3, $4) }),
        ]
        let garbage = [UInt8](repeating: 0xff, count: 40)
        for (name, codec) in codecs {
            var out = [UInt8](repeating: 0, count: 64), written = -7
            let rc = garbage.withUnsafeBytes { src in out.withUnsafeMutableBytes { dst in codec(src.baseAddress, src.count, dst.baseAddress, 64, &written) } }
            let text = String(cString: nc_error_text())
            #expect(rc == -1 && text.hasPrefix(name), "\(name)returned \(rc), \(text.debugDescription)")
        }
    }

    /// Runs of 64 and more (200 nulls, 300 equal strings, 100 nulls) in one page: run headers
    /// of two varint bytes, in the definition levels and the dictionary indices.
    @Test(arguments: ["v1", "v2"]) func longRunsReadAsWritten(page: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/parquet/long-runs.json"))
        let expected = try #require(try JSONSerialization.jsonObject(with: data) as? [Any]).map { $0 as? String }
        let file = try ParquetFile(path: "\(fixtures)/parquet/long-runs-\(page).parquet")
        #expect(file.rowGroupRows == [750])
        let rows = try readAll(file)
        #expect(rows.count == 750 && expected.count == 750)
        #expect(rows == expected)
    }

    /// The hybrid decoder itself: headers of one, two and three varint bytes, RLE and
    /// bit-packed runs, values as wide as their bit width allows.
    @Test func hybridRunHeadersOfSeveralBytes() throws {
        // 300 × 5 (RLE, header 600 = 0xd8 0x04), then 8 values bit-packed at 3 bits (header 3).
        var bytes: [UInt8] = [0xd8, 0x04, 5, 0x03]
        let packed: [UInt32] = [0, 1, 2, 3, 4, 5, 6, 7]
        var bits: UInt32 = 0
        for (i, v) in packed.enumerated() { bits |= v << UInt32(3 * i) }
        bytes += [UInt8(bits & 0xff), UInt8((bits >> 8) & 0xff), UInt8(bits >> 16)]
        #expect(try ParquetHybrid.decode(bytes, bitWidth: 3, count: 308) == Array(repeating: 5, count: 300) + packed)
        // 20,000 × 1 at bit width 1: header 40,000 = 0xc0 0xb8 0x02.
        #expect(try ParquetHybrid.decode([0xc0, 0xb8, 0x02, 1], bitWidth: 1, count: 20_000) == Array(repeating: 1, count: 20_000))
        // A run of 64 is the first to need two header bytes: 128 = 0x80 0x01.
        #expect(try ParquetHybrid.decode([0x80, 0x01, 0x2a], bitWidth: 6, count: 64) == Array(repeating: 42, count: 64))
        #expect(throws: CorpusError.self) { try ParquetHybrid.decode([0x80, 0x01], bitWidth: 6, count: 64) }
        // Runs of nothing (which no writer makes) and a bit-packed run longer than the data
        // are refused by name, even where the runs after them would give the values.
        #expect(throws: CorpusError(path: "RLE data", "RLE data: an empty RLE run")) {
            try ParquetHybrid.decode([0x00, 7, 0x04, 7], bitWidth: 3, count: 2)
        }
        #expect(throws: CorpusError(path: "RLE data", "RLE data: an empty bit-packed run")) {
            try ParquetHybrid.decode([0x01, 0x04, 7], bitWidth: 3, count: 2)
        }
        #expect(throws: CorpusError(path: "RLE data", "RLE data: a bit-packed run of 2 groups runs past the data")) {
            try ParquetHybrid.decode([0x05, 0xff, 0xff, 0xff, 0xff, 0xff], bitWidth: 3, count: 16)
        }
        #expect(try ParquetHybrid.decode([0x04, 7], bitWidth: 3, count: 2) == [7, 7])
        // An RLE run past the values asked for is cut where they end, first run or later.
        #expect(try ParquetHybrid.decode([0x14, 7], bitWidth: 3, count: 2) == [7, 7])
        #expect(try ParquetHybrid.decode([0x04, 7, 0x14, 3], bitWidth: 3, count: 5) == [7, 7, 3, 3, 3])
    }

    /// Thrift's long form of a field header (type nibble, delta 0, then the id as a zigzag
    /// varint), which writers use for ids that jump by more than 15 or go back: the footer's
    /// first field (version, id 1) rewritten so reads the same, and the fields after it, given
    /// as deltas, count from its id.
    @Test func aLongFormFieldHeaderReadsAsTheShortOne() throws {
        // Long form: type i32 (5) with delta 0, then the id as zigzag(1) = 2.
        let path = try plainFileWithFooterStart([0x05, 0x02], tag: "longform")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try ParquetFile(path: path)
        #expect(file.rowGroupRows.count == 3)
        #expect(try readAll(file) == expectedRows().rows)
    }

    /// Fields this reader does not know are skipped whatever their type: three maps put first
    /// in the footer's FileMetaData (ids 100-102), of string → list<bool> and string →
    /// list<i32> entries, empty, and of i32 → bool, leave the fields after them, and so the
    /// rows, as they were.
    @Test func unknownMapFieldsInTheFooterAreSkipped() throws {
        let fields: [UInt8] = [
            0x0b, 0xc8, 0x01,          // long form: type map (11), id zigzag(100) = 200
            0x02, 0x89,                // 2 entries; keys binary (8), values list (9)
            0x02, 0x61, 0x62,          // "ab" → [true, false]: 2 elements of type bool, a byte each
            0x21, 0x01, 0x02,
            0x01, 0x63,                // "c" → [1]: 1 element of type i32, zigzag(1) = 2
            0x15, 0x02,
            0x1b, 0x00,                // id 101 (delta 1), type map: no entries, so no types byte
            0x1b, 0x01, 0x51,          // id 102, a map of 1 entry, keys i32 (5), values bool (1):
            0x02, 0x01,                // 1 → true, the boolean a byte of its own
            0x05, 0x02,                // version again, in the long form: type i32, id zigzag(1) = 2
        ]
        let path = try plainFileWithFooterStart(fields, tag: "maps")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try ParquetFile(path: path)
        #expect(file.rowGroupRows.count == 3)
        #expect(try readAll(file) == expectedRows().rows)
    }

    /// Unknown fields are skipped however they nest, up to 64 levels deep in all (the
    /// footer's FileMetaData is the first); one more is refused, not recursed into.
    @Test func unknownFieldsNestUpToSixtyFourDeep() throws {
        func footer(nesting depth: Int) -> [UInt8] {
            // An unknown struct field (long form: type 12, id zigzag(100) = 200), each level
            // holding the next as its field 1 (0x1c), then the stops, then the version again.
            [0x0c, 0xc8, 0x01] + [UInt8](repeating: 0x1c, count: depth - 1) + [UInt8](repeating: 0x00, count: depth) + [0x05, 0x02]
        }
        let fits = try plainFileWithFooterStart(footer(nesting: 63), tag: "nest63")
        let over = try plainFileWithFooterStart(footer(nesting: 64), tag: "nest64")
        defer { for path in [fits, over] { try? FileManager.default.removeItem(atPath: path) } }
        #expect(try readAll(ParquetFile(path: fits)) == expectedRows().rows)
        #expect { try ParquetFile(path: over) } throws: { error in
            "\(error)".contains(over) && "\(error)".contains("structs nested more than 64 deep")
        }
        // Lists of lists and maps of maps count toward the same bound: an unknown list field
        // (type 9) of one list of ... of one i32; a map field (type 11) of 1 entry i32 → map.
        func lists(_ depth: Int) -> [UInt8] {
            [0x09, 0xc8, 0x01] + [UInt8](repeating: 0x19, count: depth - 1) + [0x15, 0x02, 0x05, 0x02]
        }
        func maps(_ depth: Int) -> [UInt8] {
            [0x0b, 0xc8, 0x01] + Array([[UInt8]](repeating: [0x01, 0x5b, 0x02], count: depth - 1).joined())
                + [0x01, 0x55, 0x02, 0x02, 0x05, 0x02]
        }
        for (name, nested) in [("lists", lists), ("maps", maps)] {
            let fine = try plainFileWithFooterStart(nested(63), tag: "\(name)63")
            let deep = try plainFileWithFooterStart(nested(64), tag: "\(name)64")
            defer { for path in [fine, deep] { try? FileManager.default.removeItem(atPath: path) } }
            #expect(try readAll(ParquetFile(path: fine)) == expectedRows().rows, "\(name) 63 deep")
            #expect { try ParquetFile(path: deep) } throws: { error in "\(error)".contains("containers nested too deep") }
        }
        // Each level skipped is given back: after a sibling field one level deep (the same
        // bytes without the version's header that ends them), 63 still fit and 64 are refused.
        for (name, nested, refusal) in [("structs", footer, "structs nested more than 64 deep"),
                                         ("lists", lists, "containers nested too deep"), ("maps", maps, "containers nested too deep")] {
            let sibling = Array(nested(1).dropLast(2))
            let fine = try plainFileWithFooterStart(sibling + nested(63), tag: "\(name)-sibling63")
            let deep = try plainFileWithFooterStart(sibling + nested(64), tag: "\(name)-sibling64")
            defer { for path in [fine, deep] { try? FileManager.default.removeItem(atPath: path) } }
            #expect(try readAll(ParquetFile(path: fine)) == expectedRows().rows, "\(name) 63 deep after a sibling")
            #expect { try ParquetFile(path: deep) } throws: { error in "\(error)".contains(refusal) }
        }
    }

    /// A schema of groups 63 deep is walked to its leaf (which, being nested, is then refused
    /// as a column); one 64 deep is refused by the bound, not walked (files written by
    /// tools/deep_parquet.py: the groups `g`, then a leaf `text`, no rows).
    @Test func schemasAreWalkedUpToSixtyThreeGroupsDeep() throws {
        let fine = "\(fixtures)/parquet/schema-63-deep.parquet", deep = "\(fixtures)/parquet/schema-64-deep.parquet"
        let path = Array(repeating: "g", count: 63).joined(separator: ".") + ".text"
        #expect(throws: CorpusError(path: fine, "column \"\(path)\" is nested (a struct or list); only a top-level string column can be read")) {
            try ParquetFile(path: fine, column: path)
        }
        #expect(throws: CorpusError(path: deep, "the schema nests more than 64 levels deep")) { try ParquetFile(path: deep, column: path) }
    }

    /// A schema element: its name, its repetition (0 required, 1 optional, 2 repeated), and
    /// its children for a group or its physical type for a leaf.
    typealias SchemaElement = (name: String, repetition: Int, children: Int?, type: Int?)

    /// A file of no rows whose footer holds `elements` as its schema, in Thrift's compact
    /// encoding, as tools/deep_parquet.py writes one.
    static func schemaOnlyFile(_ elements: [SchemaElement], tag: String) throws -> String {
        func varint(_ n: Int) -> [UInt8] {
            var n = UInt64(n), out: [UInt8] = []
            while n >= 0x80 { out.append(UInt8(n & 0x7f) | 0x80); n >>= 7 }
            return out + [UInt8(n)]
        }
        func zigzag(_ n: Int) -> [UInt8] { varint((n << 1) ^ (n >> 63)) }
        // A field header of the short form: the id's delta from the last, then the type
        // (i32 5, i64 6, binary 8, list 9, struct 12).
        func field(_ delta: Int, _ kind: UInt8) -> [UInt8] { [UInt8(delta << 4) | kind] }
        var schema: [UInt8] = [UInt8(elements.count << 4) | 12]   // a list of fewer than 15 structs
        try #require(elements.count < 15)
        for e in elements {
            // SchemaElement: 1 type, 3 repetition_type, 4 name, 5 num_children.
            var last = 0
            if let type = e.type { schema += field(1, 5) + zigzag(type); last = 1 }
            schema += field(3 - last, 5) + zigzag(e.repetition)
            schema += field(1, 8) + varint(e.name.utf8.count) + Array(e.name.utf8)
            if let children = e.children { schema += field(1, 5) + zigzag(children) }
            schema.append(0)
        }
        // FileMetaData: 1 version, 2 schema, 3 num_rows (0), 4 row_groups (none).
        let meta = field(1, 5) + zigzag(1) + field(1, 9) + schema + field(1, 6) + zigzag(0) + field(1, 9) + [0x0c] + [0]
        let length = UInt32(meta.count)
        let bytes = Array("PAR1".utf8) + meta + [0, 8, 16, 24].map { UInt8((length >> $0) & 0xff) } + Array("PAR1".utf8)
        let path = NSTemporaryDirectory() + "nanochat-\(tag)-\(getpid()).parquet"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A list is read only where the named group's own child repeats: the three-level and
    /// the two-level layouts are; a leaf named by its whole dotted path (repeated itself, or
    /// under a repeated group), or a list whose repeated level is one further down, is
    /// refused naming the column.
    @Test func onlyTheNamedGroupsRepeatedChildMakesAList() throws {
        let root: SchemaElement = ("schema", 0, 1, nil)
        func group(_ name: String, _ repetition: Int) -> SchemaElement { (name, repetition, 1, nil) }
        func strings(_ name: String, _ repetition: Int) -> SchemaElement { (name, repetition, nil, 6) }
        let lists = [
            ("three-level", [root, group("tags", 1), group("list", 2), strings("element", 1)]),
            ("two-level", [root, group("tags", 1), strings("element", 2)]),
        ]
        for (tag, schema) in lists {
            let path = try Self.schemaOnlyFile(schema, tag: tag)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let file = try ParquetFile(path: path, column: "tags", accepting: [.stringLists])
            #expect(file.shape == .stringLists && file.rowGroupRows.isEmpty, "\(tag)")
        }
        let refused = [
            ("repeated-leaf", [root, group("g", 1), strings("s", 2)], "g.s"),
            ("repeated-group", [root, group("g", 2), strings("s", 0)], "g.s"),
            ("deeper-repeat", [root, group("tags", 1), group("list", 1), strings("element", 2)], "tags"),
        ]
        for (tag, schema, column) in refused {
            let path = try Self.schemaOnlyFile(schema, tag: tag)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect { try ParquetFile(path: path, column: column, accepting: [.stringLists]) } throws: { error in
                "\(error)".hasPrefix(path) && "\(error)".contains("column \"\(column)\" is nested (")
                    && "\(error)".contains("in a way this reader does not read")
            }
        }
    }

    /// A schema name that is not UTF-8 (the column's name with its first byte 0xFF) is an
    /// error naming the file and what is wrong, not a name read with a replacement character.
    @Test func aStringFieldThatIsNotUTF8IsRefused() throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/parquet/none-v1-plain.parquet")))
        let length = footerLength(bytes)
        let footer = bytes.count - 8 - length
        let name: [UInt8] = [4] + Array("text".utf8)   // the schema element's name: its length, then its bytes
        let at = try #require((footer..<(bytes.count - 8 - name.count)).first { Array(bytes[$0..<($0 + name.count)]) == name })
        bytes[at + 1] = 0xFF
        let path = NSTemporaryDirectory() + "nanochat-notutf8-\(getpid()).parquet"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try readAll(try ParquetFile(path: path))
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("the footer is malformed: a string field is not UTF-8")
        }
    }

    /// A page header may claim at most 1 GiB uncompressed: exactly 1 GiB passes the size check
    /// (and fails on the page's real size, which the uncompressed codec must match, so nothing
    /// of that size is allocated); one byte more is refused as not fitting before anything is read.
    @Test func aPageOfOneGiBIsTheLargestAccepted() throws {
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/parquet/none-v1-plain.parquet")))
        // The first page of the text column (the id column's 199 bytes come first): type 0
        // (15 00), uncompressed and compressed size 1797 (15 8a 1c, twice), then the data page
        // header (2c ...) whose statistics (1c) hold a null count (36 04) and then a 32-byte
        // binary (28 20, then the bytes) that this reader skips.
        let page = 203
        try #require(Array(original[page..<(page + 22)]) == [0x15, 0x00, 0x15, 0x8a, 0x1c, 0x15, 0x8a, 0x1c, 0x2c, 0x15, 0x20,
                                                            0x15, 0x00, 0x15, 0x06, 0x15, 0x06, 0x1c, 0x36, 0x04, 0x28, 0x20])
        func claiming(_ size: UInt32) throws -> String {
            // The size as a 5-byte zigzag varint (3 bytes more); the statistics' binary 3 bytes
            // shorter, so every offset in the footer still holds.
            var zigzag = UInt64(size) << 1, varint: [UInt8] = []
            for _ in 0..<5 { varint.append(UInt8(zigzag & 0x7f) | (varint.count < 4 ? 0x80 : 0)); zigzag >>= 7 }
            let bytes = Array(original[..<(page + 3)]) + varint + Array(original[(page + 5)..<(page + 21)]) + [29]
                + Array(original[(page + 22)..<(page + 51)]) + Array(original[(page + 54)...])
            #expect(bytes.count == original.count)
            let path = NSTemporaryDirectory() + "nanochat-bigpage-\(size)-\(getpid()).parquet"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
        let limit: UInt32 = 1 << 30
        let atLimit = try claiming(limit), over = try claiming(limit + 1)
        defer { for path in [atLimit, over] { try? FileManager.default.removeItem(atPath: path) } }
        #expect {
            _ = try ParquetFile(path: atLimit).rows(ofRowGroup: 0)
        } throws: { error in
            "\(error)".contains(atLimit) && "\(error)".contains("page 0: 1797 bytes where the header says 1073741824")
        }
        #expect {
            _ = try ParquetFile(path: over).rows(ofRowGroup: 0)
        } throws: { error in
            "\(error)".contains("page 0: sizes 1797 compressed / 1073741825 uncompressed do not fit the chunk")
        }
        // The row groups the edit did not touch still read as written.
        #expect(try ParquetFile(path: atLimit).rows(ofRowGroup: 1).count == 16)
    }

    /// A footer may be up to 256 MiB: a (sparse) file whose tail claims exactly that gets its
    /// footer read and refused for what it holds (zeros); one byte more is refused unread.
    @Test func aFooterOf256MiBIsTheLargestRead() throws {
        let path = NSTemporaryDirectory() + "nanochat-bigfooter-\(getpid()).parquet"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let size = (256 << 20) + 4096
        func claiming(_ length: Int) throws -> String {
            #expect(FileManager.default.createFile(atPath: path, contents: Data("PAR1".utf8)))
            let handle = try #require(FileHandle(forWritingAtPath: path))
            try handle.truncate(atOffset: UInt64(size - 8))
            try handle.seek(toOffset: UInt64(size - 8))
            try handle.write(contentsOf: Data([0, 8, 16, 24].map { UInt8((length >> $0) & 0xff) }) + Data("PAR1".utf8))
            try handle.close()
            do { _ = try ParquetFile(path: path); return "opened" } catch { return "\(error)" }
        }
        let atLimit = try claiming(256 << 20)
        #expect(atLimit.hasPrefix(path) && !atLimit.contains("footer length") && atLimit != "opened", "\(atLimit)")
        #expect(try claiming((256 << 20) + 1) == "\(path): the footer length 268435457 does not fit the file's \(size) bytes")
    }

    /// pyarrow writes an empty table as one row group of no rows: it reads as no rows.
    @Test func anEmptyTableReadsAsNoRows() throws {
        let file = try ParquetFile(path: "\(fixtures)/parquet/empty.parquet")
        #expect(file.rowCount == 0)
        #expect(try readAll(file).isEmpty)
    }

    @Test func aRequiredColumnHasNoDefinitionLevels() throws {
        let file = try ParquetFile(path: "\(fixtures)/parquet/required.parquet")
        #expect(!file.optional)
        #expect(try readAll(file) == expectedRows().required)
    }

    @Test func documentsSkipNullsOnlyWhenAsked() throws {
        let file = try CorpusFile(path: "\(fixtures)/parquet/zstd-v2-dict.parquet")
        let expected = try expectedRows().rows
        let strict = DocumentStream(files: [file])
        #expect {
            while try strict.next() != nil {}
        } throws: { error in
            "\(error)".contains("zstd-v2-dict.parquet") && "\(error)".contains("row 3 (row group 0): the text value is null")
        }
        let lenient = DocumentStream(files: [file], options: DocumentOptions(skipBad: true))
        var docs: [String] = []
        while let d = try lenient.next() { docs.append(d) }
        #expect(docs == expected.compactMap { $0 })
        #expect(lenient.skipped == expected.filter { $0 == nil }.count)
    }

    /// Lists of strings (top-level, and in a struct as ARC's choices) and integer columns, in
    /// both page versions with and without dictionaries: every row as pyarrow wrote it, empty
    /// and null lists, null structs and null elements kept apart, a list of 150 strings whole.
    @Test(arguments: ["lists-v1-dict", "lists-v1-plain", "lists-v2-dict", "lists-v2-plain"])
    func readsListsAndIntegers(name: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/parquet/lists.json"))
        let expected = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let path = "\(fixtures)/parquet/\(name).parquet"
        func lists(_ column: String) throws -> [[String?]?] {
            let file = try ParquetFile(path: path, column: column, accepting: [.stringLists])
            #expect(file.shape == .stringLists && file.rowGroupRows == [25, 25, 10])
            return try (0..<file.rowGroupRows.count).flatMap { g in
                try file.lists(ofRowGroup: g).map { list in try list.map { try $0.map { try $0.map { try #require(String(validating: $0, as: UTF8.self)) } } } }
            }
        }
        func wanted(_ key: String) throws -> [[String?]?] {
            try #require(expected[key] as? [Any]).map { row in (row as? [Any]).map { $0.map { $0 as? String } } }
        }
        for (column, key) in [("tags", "tags"), ("choices.text", "choices_text"), ("choices.label", "choices_label")] {
            let got = try lists(column), want = try wanted(key)
            #expect(got.count == 60)
            for (i, (g, w)) in zip(got, want).enumerated() where g != w {
                Issue.record("\(name) \(column) row \(i): \(String(describing: g)) != \(String(describing: w))")
            }
        }
        #expect(try lists("tags")[30]?.count == 150)
        for (column, key) in [("answer", "answer"), ("small", "small")] {
            let file = try ParquetFile(path: path, column: column, accepting: [.integers])
            let got = try (0..<file.rowGroupRows.count).flatMap { try file.integers(ofRowGroup: $0) }
            let want = try #require(expected[key] as? [Any]).map { ($0 as? NSNumber)?.int64Value }
            #expect(got == want, "\(name) \(column)")
        }
        // Asked for what it is not, each column says what it holds.
        #expect(throws: CorpusError.self) { try ParquetFile(path: path, column: "tags") }
        #expect(throws: CorpusError.self) { try ParquetFile(path: path, column: "choices", accepting: [.stringLists]) }
        #expect(throws: CorpusError.self) { try ParquetFile(path: path, column: "answer", accepting: [.stringLists]) }
    }

    @Test(arguments: [
        ("bad-nested", "column \"text\" is nested"),
        ("bad-type", "column \"text\" has physical type INT32, not a string (BYTE_ARRAY)"),
    ]) func refusesWhatItCannotRead(name: String, message: String) throws {
        let path = "\(fixtures)/parquet/\(name).parquet"
        #expect {
            let file = try ParquetFile(path: path)
            _ = try readAll(file)
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix(path) && text.contains(message)
        }
    }

    @Test func aMissingColumnNamesTheColumnsThereAre() throws {
        #expect {
            _ = try ParquetFile(path: "\(fixtures)/parquet/none-v1-dict.parquet", column: "body")
        } throws: { error in
            "\(error)".contains("no column \"body\"; the file has id, text")
        }
    }

    /// Runs `body` on a temporary copy of the file `original` whose byte at `at` is set to
    /// `value`, removing the copy after.
    static func withByte<R>(_ original: [UInt8], setTo value: UInt8, at: Int, _ body: (String) throws -> R) throws -> R {
        var bytes = original
        bytes[at] = value
        let path = NSTemporaryDirectory() + "nanochat-byte-\(at)-\(value)-\(UUID().uuidString).parquet"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return try body(path)
    }

    /// What reading row group 0 of the file `original`, with the byte at `at` set to `value`,
    /// gives: "read", or the error's text.
    static func readingRowGroup0(_ original: [UInt8], with value: UInt8, at: Int) throws -> String {
        try withByte(original, setTo: value, at: at) { path in
            do {
                _ = try ParquetFile(path: path).rows(ofRowGroup: 0)
                return "read"
            } catch {
                return "\(error)"
            }
        }
    }

    /// Dictionary indices are at most 32 bits wide (parquet-format): a page whose bit width
    /// byte says 32 is decoded (and, its runs being too short for that width, refused for
    /// them); 33 is refused as no valid width.
    @Test func dictionaryIndicesAreAtMost32BitsWide() throws {
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/parquet/none-v1-dict.parquet")))
        // The text column's data page of row group 0: a 59-byte header at 1619, then the
        // definition levels (length 3: 05 f7 fb), then the indices' bit width, 3.
        let width = 1619 + 59 + 4 + 3
        try #require(Array(original[(width - 7)...width]) == [0x03, 0x00, 0x00, 0x00, 0x05, 0xf7, 0xfb, 0x03])
        func message(width value: UInt8) throws -> String { try Self.readingRowGroup0(original, with: value, at: width) }
        #expect(try message(width: 3) == "read")
        let wide = try message(width: 32)
        #expect(wide != "read" && !wide.contains("no valid bit width"), "\(wide)")
        #expect(try message(width: 33).contains("no valid bit width for the dictionary indices"))
    }

    /// A delta miniblock's values are at most 64 bits wide: a page whose width byte says 65 is
    /// refused naming that width; one that says 64 is taken as a width (its 256 bytes then
    /// leave the suffixes' header misread, which is refused for that).
    @Test func deltaMiniblocksAreAtMost64BitsWide() throws {
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/parquet/delta-prefix-none.parquet")))
        // Row group 0's prefix lengths: a delta header (blocks of 128 values in 4 miniblocks,
        // 14 values), the first value (0), the least delta (zigzag 0x7b), then the four
        // miniblocks' widths, the first 7.
        let width = 277
        try #require(Array(original[(width - 6)...(width + 3)]) == [0x80, 0x01, 0x04, 0x0e, 0x00, 0x7b, 0x07, 0x00, 0x00, 0x00])
        func message(width value: UInt8) throws -> String { try Self.readingRowGroup0(original, with: value, at: width) }
        #expect(try message(width: 7) == "read")
        let widest = try message(width: 64)
        #expect(widest.contains("a delta header of blocks") && !widest.contains("-bit values"), "\(widest)")
        #expect(try message(width: 65).contains("a delta miniblock of 65-bit values"))
        #expect(try message(width: 255).contains("a delta miniblock of 255-bit values"))
    }

    /// Opening none-v1-plain.parquet with the byte at `at` set to `value` is refused naming
    /// the file and `message`. The file must hold `around` there, `around[around.count / 2]`
    /// being the byte at `at`.
    static func footerFieldRefused(at: Int, was around: [UInt8], value: UInt8, message: String) throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/parquet/none-v1-plain.parquet")))
        try #require(bytes.count == 7936 && Array(bytes[(at - around.count / 2)...].prefix(around.count)) == around)
        try withByte(bytes, setTo: value, at: at) { path in
            #expect { try ParquetFile(path: path) } throws: { error in
                error is CorpusError && "\(error)".contains(path) && "\(error)".contains(message)
            }
        }
    }

    /// A column chunk whose metadata lacks data_page_offset (field 9, renumbered here to 10,
    /// which the reader skips) is refused by name rather than read from offset 0 or elsewhere.
    @Test func aColumnChunkWithoutItsPageOffsetIsRefused() throws {
        // Row group 1's "text" chunk: total_compressed_size (0x16, varint b8 2b), then
        // data_page_offset's field header 0x26 (id delta 2 after field 7, type i64).
        try Self.footerFieldRefused(at: 7182, was: [0x16, 0xb8, 0x2b, 0x26, 0xa8, 0x23], value: 0x36,
                                    message: "a column chunk lacks its metadata (values, size or offset)")
    }

    /// A row group whose footer entry lacks num_rows (field 3, renumbered here to 12, which the
    /// reader skips) is refused by name, not read as a group of no rows or of -1.
    @Test func aRowGroupWithoutItsRowCountIsRefused() throws {
        // Row group 0, after its columns: total_byte_size (0x16, varint 92 20), then num_rows
        // (0x16: id delta 1, type i64) of 16 (zigzag 0x20), then file_offset (0x26).
        try Self.footerFieldRefused(at: 7054, was: [0x16, 0x92, 0x20, 0x16, 0x20, 0x26], value: 0x96,
                                    message: "row group 0 lacks its row count (num_rows)")
    }

    /// Every truncation of a file, and random single-byte corruptions, give an error or rows,
    /// never a crash (a truncated footer is the common case: a copy cut short).
    @Test(arguments: ["snappy-v1-dict", "delta-prefix-none"]) func truncatedOrCorruptFilesFailCleanly(name: String) throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/parquet/\(name).parquet"))
        let path = NSTemporaryDirectory() + "nanochat-corpus-\(getpid())-\(name).parquet"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var errors = 0
        for cut in stride(from: 0, to: original.count, by: 97) {
            try original.prefix(cut).write(to: URL(fileURLWithPath: path))
            #expect(throws: CorpusError.self) { _ = try readAll(try ParquetFile(path: path)) }
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var bytes = [UInt8](original)
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            bytes[at] ^= UInt8.random(in: 1...255, using: &rng)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            do {
                let file = try ParquetFile(path: path)
                var rows = 0
                for g in 0..<file.rowGroupRows.count { rows += try file.rows(ofRowGroup: g).count }
                // A flipped byte inside a page can change strings (these pages carry no
                // checksum), but every row group still yields its rows.
                #expect(rows == file.rowCount)
            } catch is CorpusError {
                errors += 1
            }
        }
        #expect(errors > 0)
    }
}
