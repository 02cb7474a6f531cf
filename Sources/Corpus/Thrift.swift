// Thrift's compact protocol, read side: what parquet's footer and page headers are written
// in. A struct is a run of fields, each a header byte (field-id delta in the high nibble, 0
// meaning a zigzag i16 id follows; type in the low nibble) then the value, ended by a 0
// byte. Integers are zigzag varints, binary is a varint length then bytes, a list is a
// header (size in the high nibble, 15 meaning a varint size follows; element type in the
// low nibble) then its elements. Every read is bounds-checked: the bytes come from files.

/// A malformed Thrift value; the parquet reader adds the file and what it was reading.
struct ThriftError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// A zigzag-encoded integer's value (0, -1, 1, -2, ... for 0, 1, 2, 3, ...): Thrift's compact
/// integers and the delta encodings' first values and minimum deltas.
func zigzagDecoded(_ v: UInt64) -> Int64 {
    Int64(bitPattern: (v >> 1) ^ (0 &- (v & 1)))
}

/// The compact protocol's type codes.
enum ThriftType: UInt8 {
    case stop = 0, boolTrue = 1, boolFalse = 2, byte = 3, i16 = 4, i32 = 5, i64 = 6, double = 7
    case binary = 8, list = 9, set = 10, map = 11, structure = 12
}

/// Reads compact-protocol values from a byte buffer.
struct ThriftReader {
    private let bytes: UnsafeRawBufferPointer
    /// Offset of the next unread byte.
    private(set) var position: Int
    /// Nesting depth of structs and containers being skipped; a bound keeps a hostile file
    /// from exhausting the stack.
    private var depth = 0
    static let maxDepth = 64

    init(_ bytes: UnsafeRawBufferPointer, at position: Int = 0) {
        self.bytes = bytes; self.position = position
    }

    mutating func byte() throws -> UInt8 {
        guard position < bytes.count else { throw ThriftError("truncated: the data ends at byte \(position)") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0, shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64 else { throw ThriftError("a varint longer than 10 bytes at byte \(position)") }
            result |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func zigzag() throws -> Int64 { zigzagDecoded(try varint()) }

    mutating func i32() throws -> Int32 {
        let v = try zigzag()
        guard let r = Int32(exactly: v) else { throw ThriftError("\(v) does not fit an i32") }
        return r
    }

    mutating func i64() throws -> Int64 { try zigzag() }

    mutating func binary() throws -> [UInt8] {
        let n = try varint()
        guard n <= UInt64(bytes.count - position) else {
            throw ThriftError("a binary field of \(n) bytes runs past the end (\(bytes.count - position) left)")
        }
        let start = position
        position += Int(n)
        return Array(bytes[start..<position])
    }

    mutating func string() throws -> String {
        let b = try binary()
        guard let s = String(validating: b, as: UTF8.self) else { throw ThriftError("a string field is not UTF-8") }
        return s
    }

    /// A list header: element type and count.
    mutating func listHeader() throws -> (ThriftType, Int) {
        let h = try byte()
        guard let type = ThriftType(rawValue: h & 0x0f) else { throw ThriftError("unknown list element type \(h & 0x0f)") }
        var n = UInt64(h >> 4)
        if n == 15 { n = try varint() }
        // Every element takes at least one byte, which bounds a lying count.
        guard n <= UInt64(bytes.count - position) else { throw ThriftError("a list of \(n) elements runs past the end") }
        return (type, Int(n))
    }

    /// Calls `field` for each field of a struct with its id and type; `field` reads the value
    /// or calls `skip`. Stops at the struct's end.
    mutating func readStruct(_ field: (inout ThriftReader, Int16, ThriftType) throws -> Void) throws {
        depth += 1
        defer { depth -= 1 }
        guard depth <= ThriftReader.maxDepth else { throw ThriftError("structs nested more than \(ThriftReader.maxDepth) deep") }
        var lastID: Int16 = 0
        while true {
            let h = try byte()
            if h == 0 { return }
            guard let type = ThriftType(rawValue: h & 0x0f) else { throw ThriftError("unknown field type \(h & 0x0f)") }
            let delta = Int16(h >> 4)
            let id: Int16
            if delta == 0 {
                let v = try zigzag()
                guard let i = Int16(exactly: v) else { throw ThriftError("field id \(v) out of range") }
                id = i
            } else {
                id = lastID &+ delta
            }
            lastID = id
            try field(&self, id, type)
        }
    }

    /// A struct field's boolean, which the compact protocol keeps in the type nibble.
    func bool(_ type: ThriftType) throws -> Bool {
        switch type {
        case .boolTrue: return true
        case .boolFalse: return false
        default: throw ThriftError("expected a boolean, found type \(type)")
        }
    }

    /// A list of strings.
    mutating func stringList() throws -> [String] {
        let (type, n) = try listHeader()
        guard type == .binary else { throw ThriftError("expected a list of strings, found \(type)") }
        return try (0..<n).map { _ in try string() }
    }

    /// A list of structs, each read by `element`.
    mutating func structList<T>(_ element: (inout ThriftReader) throws -> T) throws -> [T] {
        let (type, n) = try listHeader()
        guard type == .structure else { throw ThriftError("expected a list of structs, found \(type)") }
        var out: [T] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try element(&self)) }
        return out
    }

    /// Moves past a value of `type` (a field this reader does not use).
    mutating func skip(_ type: ThriftType) throws {
        switch type {
        case .stop: throw ThriftError("a stop where a value was expected")
        case .boolTrue, .boolFalse: return
        case .byte: _ = try byte()
        case .i16, .i32, .i64: _ = try varint()
        case .double:
            guard bytes.count - position >= 8 else { throw ThriftError("truncated double") }
            position += 8
        case .binary: _ = try binary()
        case .list, .set:
            let (element, n) = try listHeader()
            depth += 1
            defer { depth -= 1 }
            guard depth <= ThriftReader.maxDepth else { throw ThriftError("containers nested too deep") }
            for _ in 0..<n {
                // Booleans in a container take one byte each.
                if element == .boolTrue || element == .boolFalse { _ = try byte() } else { try skip(element) }
            }
        case .map:
            let n = try varint()
            guard n <= UInt64(bytes.count - position) else { throw ThriftError("a map of \(n) entries runs past the end") }
            if n == 0 { return }
            let kv = try byte()
            guard let k = ThriftType(rawValue: kv >> 4), let v = ThriftType(rawValue: kv & 0x0f) else {
                throw ThriftError("unknown map key or value type")
            }
            depth += 1
            defer { depth -= 1 }
            guard depth <= ThriftReader.maxDepth else { throw ThriftError("containers nested too deep") }
            for _ in 0..<n {
                for t in [k, v] {
                    if t == .boolTrue || t == .boolFalse { _ = try byte() } else { try skip(t) }
                }
            }
        case .structure:
            try readStruct { r, _, t in try r.skip(t) }
        }
    }
}
