// The pages of one parquet column chunk, decoded to its level entries and values: strings
// (byte arrays) or integers' bytes, flat or in lists. See ParquetFile.swift for the layout;
// the numbers below are parquet-format's enums.
import CCompression

struct PageError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

struct ColumnChunkDecoder {
    let bytes: UnsafeRawBufferPointer
    let codec: ParquetFile.Codec
    /// The column's highest definition and repetition levels (0 where it has none: a
    /// required top-level column; 1 and 0 an optional one; a list of strings repeats once).
    let maxDefinition: Int, maxRepetition: Int
    /// Level entries in the chunk (values, nulls and empty lists).
    let valueCount: Int
    /// The byte width of a PLAIN value of an INT32 or INT64 column; nil for byte arrays.
    var fixedWidth: Int? = nil

    /// PageType.
    static let dataPage: Int32 = 0, indexPage: Int32 = 1, dictionaryPage: Int32 = 2, dataPageV2: Int32 = 3
    /// Encoding.
    static let plain: Int32 = 0, plainDictionary: Int32 = 2, rle: Int32 = 3, rleDictionary: Int32 = 8
    static let deltaLengthByteArray: Int32 = 6, deltaByteArray: Int32 = 7
    static let encodingNames: [Int32: String] = [0: "PLAIN", 2: "PLAIN_DICTIONARY", 3: "RLE", 4: "BIT_PACKED", 5: "DELTA_BINARY_PACKED",
                                6: "DELTA_LENGTH_BYTE_ARRAY", 7: "DELTA_BYTE_ARRAY", 8: "RLE_DICTIONARY", 9: "BYTE_STREAM_SPLIT"]

    struct Header {
        var type: Int32 = -1, uncompressed: Int32 = -1, compressed: Int32 = -1
        // Data page v1 and v2, dictionary page.
        var values: Int32 = -1, encoding: Int32 = -1, definitionEncoding: Int32 = ColumnChunkDecoder.rle
        var repetitionEncoding: Int32 = ColumnChunkDecoder.rle
        var nulls: Int32 = 0, definitionBytes: Int32 = 0, repetitionBytes: Int32 = 0, compressedValues = true
    }

    /// A chunk's level entries and the values of those that hold one (definition level =
    /// the maximum), in order. Levels are nil where the column has none.
    struct Levels {
        var definition: [UInt32]? = nil, repetition: [UInt32]? = nil
        var values: [[UInt8]] = []
        var count = 0
    }

    /// Bits of a level up to `max` (0 for none).
    static func bitWidth(_ max: Int) -> Int { max == 0 ? 0 : Int.bitWidth - max.leadingZeroBitCount }

    func decode() throws -> Levels {
        var out = Levels()
        if maxDefinition > 0 { out.definition = []; out.definition?.reserveCapacity(valueCount) }
        if maxRepetition > 0 { out.repetition = []; out.repetition?.reserveCapacity(valueCount) }
        out.values.reserveCapacity(valueCount)
        var dictionary: [[UInt8]]?
        var position = 0
        var page = 0
        while out.count < valueCount {
            guard position < bytes.count else {
                throw PageError("the column chunk ends after \(out.count) of its \(valueCount) values")
            }
            var reader = ThriftReader(bytes, at: position)
            let h = try ColumnChunkDecoder.header(&reader)
            position = reader.position
            guard h.compressed >= 0, h.uncompressed >= 0, Int(h.uncompressed) <= ParquetFile.maxPageBytes,
                  Int(h.compressed) <= bytes.count - position else {
                throw PageError("page \(page): sizes \(h.compressed) compressed / \(h.uncompressed) uncompressed do not fit the chunk")
            }
            let body = UnsafeRawBufferPointer(rebasing: bytes[position..<(position + Int(h.compressed))])
            position += Int(h.compressed)
            let place = "page \(page)"
            page += 1
            switch h.type {
            case ColumnChunkDecoder.dictionaryPage:
                guard h.encoding == ColumnChunkDecoder.plain || h.encoding == ColumnChunkDecoder.plainDictionary else {
                    throw PageError("\(place): a dictionary in encoding \(name(h.encoding)); only PLAIN and PLAIN_DICTIONARY are supported")
                }
                let data = try decompress(body, to: Int(h.uncompressed), place: place)
                var d: [[UInt8]] = []
                var at = 0
                for _ in 0..<max(0, Int(h.values)) { d.append(try plainValue(data, &at, place: place)) }
                dictionary = d
            case ColumnChunkDecoder.dataPage, ColumnChunkDecoder.dataPageV2:
                let v2 = h.type == ColumnChunkDecoder.dataPageV2
                guard h.values >= 0, Int(h.values) <= valueCount - out.count else {
                    throw PageError("\(place): \(h.values) values, more than the \(valueCount - out.count) the chunk has left")
                }
                let n = Int(h.values)
                var repeated: [UInt32]? = nil, defined: [UInt32]? = nil
                var values: [UInt8]
                let (rw, dw) = (ColumnChunkDecoder.bitWidth(maxRepetition), ColumnChunkDecoder.bitWidth(maxDefinition))
                if v2 {
                    guard maxRepetition > 0 || h.repetitionBytes == 0 else { throw PageError("\(place): repetition levels in a plain column") }
                    guard h.repetitionBytes >= 0, h.definitionBytes >= 0, Int(h.repetitionBytes) + Int(h.definitionBytes) <= body.count else {
                        throw PageError("\(place): levels of \(h.repetitionBytes) + \(h.definitionBytes) bytes in a page of \(body.count)")
                    }
                    let r = Int(h.repetitionBytes), d = Int(h.definitionBytes)
                    if maxRepetition > 0 {
                        repeated = try ColumnChunkDecoder.hybrid(UnsafeRawBufferPointer(rebasing: body[0..<r]), bitWidth: rw, count: n, place: place)
                    }
                    if maxDefinition > 0 {
                        defined = try ColumnChunkDecoder.hybrid(UnsafeRawBufferPointer(rebasing: body[r..<(r + d)]), bitWidth: dw, count: n, place: place)
                    }
                    let rest = UnsafeRawBufferPointer(rebasing: body[(r + d)...])
                    let size = Int(h.uncompressed) - r - d
                    values = h.compressedValues ? try decompress(rest, to: size, place: place) : Array(rest)
                } else {
                    let data = try decompress(body, to: Int(h.uncompressed), place: place)
                    var at = 0
                    // Repetition levels, then definition levels, each a u32 length and the hybrid runs.
                    func levels(_ width: Int, encoding: Int32, _ what: String) throws -> [UInt32] {
                        guard encoding == ColumnChunkDecoder.rle else {
                            throw PageError("\(place): \(what) levels in encoding \(name(encoding)); only RLE is supported")
                        }
                        let length = try u32(data, at, place: place)
                        guard length <= data.count - at - 4 else { throw PageError("\(place): \(what) levels run past the page") }
                        defer { at += 4 + length }
                        return try data.withUnsafeBytes {
                            try ColumnChunkDecoder.hybrid(UnsafeRawBufferPointer(rebasing: $0[(at + 4)..<(at + 4 + length)]),
                                                          bitWidth: width, count: n, place: place)
                        }
                    }
                    if maxRepetition > 0 { repeated = try levels(rw, encoding: h.repetitionEncoding, "repetition") }
                    if maxDefinition > 0 { defined = try levels(dw, encoding: h.definitionEncoding, "definition") }
                    values = Array(data[at...])
                }
                if let defined, let bad = defined.first(where: { Int($0) > maxDefinition }) {
                    throw PageError("\(place): definition level \(bad) above the column's \(maxDefinition)")
                }
                if let repeated {
                    if let bad = repeated.first(where: { Int($0) > maxRepetition }) {
                        throw PageError("\(place): repetition level \(bad) above the column's \(maxRepetition)")
                    }
                    if out.count == 0, let first = repeated.first, first != 0 {
                        throw PageError("\(place): the column chunk starts inside a row (repetition level \(first))")
                    }
                }
                let top = UInt32(maxDefinition)
                let present = defined.map { $0.reduce(0) { $0 + ($1 == top ? 1 : 0) } } ?? n
                out.values += try decodeValues(values, encoding: h.encoding, count: present, dictionary: dictionary, place: place)
                if let defined { out.definition? += defined }
                if let repeated { out.repetition? += repeated }
                out.count += n
            case ColumnChunkDecoder.indexPage:
                continue
            default:
                throw PageError("\(place): unknown page type \(h.type)")
            }
        }
        return out
    }

    /// `count` values of a data page in `encoding`.
    func decodeValues(_ values: [UInt8], encoding: Int32, count present: Int, dictionary: [[UInt8]]?, place: String) throws -> [[UInt8]] {
        switch encoding {
        case ColumnChunkDecoder.plain:
            var at = 0
            return try (0..<present).map { _ in try plainValue(values, &at, place: place) }
        case ColumnChunkDecoder.plainDictionary, ColumnChunkDecoder.rleDictionary:
            guard let dictionary else { throw PageError("\(place): dictionary indices with no dictionary page before them") }
            guard let width = values.first, width <= 32 else { throw PageError("\(place): no valid bit width for the dictionary indices") }
            let ids = try values.withUnsafeBytes {
                try ColumnChunkDecoder.hybrid(UnsafeRawBufferPointer(rebasing: $0[1...]), bitWidth: Int(width), count: present, place: place)
            }
            return try ids.map { id in
                guard Int(id) < dictionary.count else { throw PageError("\(place): dictionary index \(id) of \(dictionary.count) entries") }
                return dictionary[Int(id)]
            }
        case ColumnChunkDecoder.deltaLengthByteArray where fixedWidth == nil:
            var reader = ParquetDelta.Reader(data: values, place: place)
            return try ParquetDelta.lengthPrefixed(&reader, count: present)
        case ColumnChunkDecoder.deltaByteArray where fixedWidth == nil:
            var reader = ParquetDelta.Reader(data: values, place: place)
            return try ParquetDelta.sharedPrefixes(&reader, count: present)
        default:
            throw PageError("\(place): values in encoding \(name(encoding)); only PLAIN, dictionary\(fixedWidth == nil ? " and delta (DELTA_LENGTH_BYTE_ARRAY, DELTA_BYTE_ARRAY)" : "") encodings are supported")
        }
    }

    func name(_ encoding: Int32) -> String { ColumnChunkDecoder.encodingNames[encoding] ?? "\(encoding)" }

    /// PageHeader: 1 type, 2 uncompressed_page_size, 3 compressed_page_size, 5 data_page_header
    /// (1 num_values, 2 encoding, 3 definition_level_encoding, 4 repetition_level_encoding), 7 dictionary_page_header
    /// (1 num_values, 2 encoding), 8 data_page_header_v2 (1 num_values, 2 num_nulls, 4 encoding,
    /// 5 definition_levels_byte_length, 6 repetition_levels_byte_length, 7 is_compressed).
    static func header(_ r: inout ThriftReader) throws -> Header {
        var h = Header()
        try r.readStruct { r, id, type in
            switch (id, type) {
            case (1, .i32): h.type = try r.i32()
            case (2, .i32): h.uncompressed = try r.i32()
            case (3, .i32): h.compressed = try r.i32()
            case (5, .structure):
                try r.readStruct { r, id, type in
                    switch (id, type) {
                    case (1, .i32): h.values = try r.i32()
                    case (2, .i32): h.encoding = try r.i32()
                    case (3, .i32): h.definitionEncoding = try r.i32()
                    case (4, .i32): h.repetitionEncoding = try r.i32()
                    default: try r.skip(type)
                    }
                }
            case (7, .structure):
                try r.readStruct { r, id, type in
                    switch (id, type) {
                    case (1, .i32): h.values = try r.i32()
                    case (2, .i32): h.encoding = try r.i32()
                    default: try r.skip(type)
                    }
                }
            case (8, .structure):
                try r.readStruct { r, id, type in
                    switch (id, type) {
                    case (1, .i32): h.values = try r.i32()
                    case (2, .i32): h.nulls = try r.i32()
                    case (4, .i32): h.encoding = try r.i32()
                    case (5, .i32): h.definitionBytes = try r.i32()
                    case (6, .i32): h.repetitionBytes = try r.i32()
                    case (7, .boolTrue), (7, .boolFalse): h.compressedValues = try r.bool(type)
                    default: try r.skip(type)
                    }
                }
            default: try r.skip(type)
            }
        }
        return h
    }

    /// One PLAIN value at `at`: a byte array (u32 LE length, then the bytes), or an
    /// integer's `fixedWidth` LE bytes.
    func plainValue(_ data: [UInt8], _ at: inout Int, place: String) throws -> [UInt8] {
        if let width = fixedWidth {
            guard width <= data.count - at else { throw PageError("\(place): truncated") }
            defer { at += width }
            return Array(data[at..<(at + width)])
        }
        let n = try u32(data, at, place: place)
        guard n <= data.count - at - 4 else { throw PageError("\(place): a string of \(n) bytes runs past the page") }
        defer { at += 4 + n }
        return Array(data[(at + 4)..<(at + 4 + n)])
    }

    func u32(_ data: [UInt8], _ at: Int, place: String) throws -> Int {
        guard at >= 0, data.count - at >= 4 else { throw PageError("\(place): truncated") }
        return Int(UInt32(data[at]) | UInt32(data[at + 1]) << 8 | UInt32(data[at + 2]) << 16 | UInt32(data[at + 3]) << 24)
    }

    /// `body` decompressed with the chunk's codec; it must come to exactly `size` bytes.
    func decompress(_ body: UnsafeRawBufferPointer, to size: Int, place: String) throws -> [UInt8] {
        guard size >= 0 else { throw PageError("\(place): a negative uncompressed size") }
        if codec == .uncompressed {
            guard body.count == size else { throw PageError("\(place): \(body.count) bytes where the header says \(size)") }
            return Array(body)
        }
        var out = [UInt8](repeating: 0, count: size)
        var written = 0
        let rc = out.withUnsafeMutableBytes { dst -> Int32 in
            // An empty destination still needs a valid pointer for the C libraries.
            var one: UInt8 = 0
            let p = dst.baseAddress ?? withUnsafeMutablePointer(to: &one) { UnsafeMutableRawPointer($0) }
            switch codec {
            case .snappy: return nc_snappy(body.baseAddress, body.count, p, size, &written)
            case .gzip: return nc_gunzip(body.baseAddress, body.count, p, size, &written)
            case .lz4Raw: return nc_lz4_raw(body.baseAddress, body.count, p, size, &written)
            case .lz4: return nc_lz4_hadoop(body.baseAddress, body.count, p, size, &written)
            case .brotli: return nc_brotli(body.baseAddress, body.count, p, size, &written)
            default: return nc_zstd(body.baseAddress, body.count, p, size, &written)
            }
        }
        guard rc == 0 else { throw PageError("\(place): \(String(cString: nc_error_text()))") }
        guard written == size else { throw PageError("\(place): decompressed to \(written) bytes where the header says \(size)") }
        return out
    }

    /// `count` values from parquet's RLE / bit-packed hybrid: runs, each a varint header h;
    /// h even: h/2 repeats of one value in ceil(bitWidth/8) LE bytes; h odd: h/2 groups of 8
    /// values packed LSB first in bitWidth bits each.
    static func hybrid(_ data: UnsafeRawBufferPointer, bitWidth: Int, count: Int, place: String) throws -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(count)
        var at = 0
        func byte() throws -> UInt8 {
            guard at < data.count else { throw PageError("\(place): RLE data ends after \(out.count) of \(count) values") }
            defer { at += 1 }
            return data[at]
        }
        let mask: UInt64 = bitWidth == 32 ? 0xffff_ffff : (1 << UInt64(bitWidth)) - 1
        while out.count < count {
            var header: UInt64 = 0, shift: UInt64 = 0
            while true {
                let b = try byte()
                guard shift < 35 else { throw PageError("\(place): an RLE run header longer than 5 bytes") }
                header |= UInt64(b & 0x7f) << shift
                if b & 0x80 == 0 { break }
                shift += 7
            }
            if header & 1 == 0 {
                let n = Int(header >> 1)
                var value: UInt32 = 0
                for i in 0..<((bitWidth + 7) / 8) { value |= UInt32(try byte()) << (8 * UInt32(i)) }
                guard UInt64(value) <= mask else { throw PageError("\(place): an RLE value wider than \(bitWidth) bits") }
                guard n > 0 else { throw PageError("\(place): an empty RLE run") }
                out += repeatElement(value, count: min(n, count - out.count))
            } else {
                let groups = Int(header >> 1)
                guard groups > 0 else { throw PageError("\(place): an empty bit-packed run") }
                guard groups * bitWidth <= data.count - at else {
                    throw PageError("\(place): a bit-packed run of \(groups) groups runs past the data")
                }
                var buffer: UInt64 = 0, bits = 0
                for _ in 0..<(groups * 8) {
                    while bits < bitWidth { buffer |= UInt64(data[at]) << UInt64(bits); at += 1; bits += 8 }
                    let v = UInt32(truncatingIfNeeded: buffer & mask)
                    buffer = bitWidth == 64 ? 0 : buffer >> UInt64(bitWidth)
                    bits -= bitWidth
                    if out.count < count { out.append(v) }
                }
            }
        }
        return out
    }
}

/// Parquet's RLE / bit-packed hybrid encoding (definition levels, dictionary indices), for
/// tests and tools that check the decoder directly.
public enum ParquetHybrid {
    /// `count` values of `bitWidth` bits from `bytes` (no length prefix); the error names
    /// what is wrong with the data.
    public static func decode(_ bytes: [UInt8], bitWidth: Int, count: Int) throws -> [UInt32] {
        guard (0...32).contains(bitWidth), count >= 0 else { throw CorpusError(path: "RLE data", "bit width \(bitWidth) or count \(count) out of range") }
        do {
            return try bytes.withUnsafeBytes { try ColumnChunkDecoder.hybrid($0, bitWidth: bitWidth, count: count, place: "RLE data") }
        } catch let e as PageError {
            throw CorpusError(path: "RLE data", e.message)
        }
    }
}
