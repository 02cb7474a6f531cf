// Parquet's delta encodings of strings, as pyarrow (`column_encoding`), DuckDB's V2 files and
// Spark write them: DELTA_BINARY_PACKED integers (the lengths), DELTA_LENGTH_BYTE_ARRAY (the
// lengths, then the bytes end to end) and DELTA_BYTE_ARRAY (each value's prefix shared with
// the one before, then its suffix as DELTA_LENGTH_BYTE_ARRAY). Layouts from parquet-format's
// Encodings.md; every count and width is checked against the page before it is used.

enum ParquetDelta {
    /// Reads the data of one page from its start.
    struct Reader {
        let data: [UInt8]
        var at = 0
        let place: String

        mutating func byte() throws -> UInt8 {
            guard at < data.count else { throw PageError("\(place): delta-encoded data ends early") }
            defer { at += 1 }
            return data[at]
        }

        /// An unsigned LEB128 varint of at most 64 bits.
        mutating func uleb() throws -> UInt64 {
            var value: UInt64 = 0, shift: UInt64 = 0
            while true {
                let b = try byte()
                guard shift < 64 else { throw PageError("\(place): a varint longer than 10 bytes in delta-encoded data") }
                value |= UInt64(b & 0x7f) << shift
                if b & 0x80 == 0 { return value }
                shift += 7
            }
        }

        /// A zigzag varint.
        mutating func zigzag() throws -> Int64 { zigzagDecoded(try uleb()) }
    }

    /// DELTA_BINARY_PACKED: `count` integers (the header must say as many), from `reader.at`;
    /// leaves `reader.at` after the last miniblock that holds a value.
    static func integers(_ reader: inout Reader, count: Int) throws -> [Int64] {
        let place = reader.place
        let blockSize = try reader.uleb(), miniblocks = try reader.uleb(), total = try reader.uleb()
        guard blockSize > 0, blockSize % 128 == 0, blockSize <= 1 << 20, miniblocks > 0, blockSize % miniblocks == 0,
              (blockSize / miniblocks) % 32 == 0 else {
            throw PageError("\(place): a delta header of blocks of \(blockSize) values in \(miniblocks) miniblocks, which the format does not allow")
        }
        guard total == UInt64(count) else {
            throw PageError("\(place): delta-encoded data of \(total) values where the page has \(count)")
        }
        var values: [Int64] = []
        values.reserveCapacity(count)
        var last = try reader.zigzag()
        if count > 0 { values.append(last) }
        let perMiniblock = Int(blockSize / miniblocks)
        while values.count < count {
            let minDelta = try reader.zigzag()
            var widths: [Int] = []
            for _ in 0..<miniblocks {
                let w = Int(try reader.byte())
                guard w <= 64 else { throw PageError("\(place): a delta miniblock of \(w)-bit values") }
                widths.append(w)
            }
            for width in widths where values.count < count {
                let bytes = perMiniblock * width / 8
                guard bytes <= reader.data.count - reader.at else { throw PageError("\(place): a delta miniblock runs past the page") }
                var buffer: UInt64 = 0, bits = 0, taken = 0
                for _ in 0..<perMiniblock {
                    var delta: UInt64 = 0
                    if width > 0 {
                        // Little-endian bits: fill up to the width, a byte at a time.
                        var got = 0
                        while got < width {
                            if bits == 0 { buffer = UInt64(reader.data[reader.at + taken]); taken += 1; bits = 8 }
                            let use = min(bits, width - got)
                            delta |= (buffer & ((1 << UInt64(use)) - 1)) << UInt64(got)
                            buffer >>= UInt64(use); bits -= use; got += use
                        }
                    }
                    if values.count < count {
                        last = last &+ minDelta &+ Int64(bitPattern: delta)
                        values.append(last)
                    }
                }
                reader.at += bytes
            }
        }
        return values
    }

    /// DELTA_LENGTH_BYTE_ARRAY: `count` strings from `reader.at`.
    static func lengthPrefixed(_ reader: inout Reader, count: Int) throws -> [[UInt8]] {
        let lengths = try integers(&reader, count: count)
        var out: [[UInt8]] = []
        out.reserveCapacity(count)
        for length in lengths {
            guard length >= 0, length <= reader.data.count - reader.at else {
                throw PageError("\(reader.place): a string of \(length) bytes where the page has \(reader.data.count - reader.at) left")
            }
            out.append(Array(reader.data[reader.at..<(reader.at + Int(length))]))
            reader.at += Int(length)
        }
        return out
    }

    /// DELTA_BYTE_ARRAY: `count` strings, each the first `prefix` bytes of the one before and
    /// its own suffix.
    static func sharedPrefixes(_ reader: inout Reader, count: Int) throws -> [[UInt8]] {
        let prefixes = try integers(&reader, count: count)
        let suffixes = try lengthPrefixed(&reader, count: count)
        var out: [[UInt8]] = []
        out.reserveCapacity(count)
        for (i, (prefix, suffix)) in zip(prefixes, suffixes).enumerated() {
            let previous = out.last ?? []
            guard prefix >= 0, prefix <= previous.count else {
                throw PageError("\(reader.place): string \(i) shares \(prefix) bytes with a previous string of \(previous.count)")
            }
            out.append(Array(previous[..<Int(prefix)]) + suffix)
        }
        return out
    }
}
