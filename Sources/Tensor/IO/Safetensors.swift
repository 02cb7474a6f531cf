// safetensors, read and written by hand (the format is small): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
// then the raw row-major data. Offsets count from the end of the header.
import Foundation

/// An error reading or writing a tensor file, naming the file and, where it applies, the tensor.
public struct TensorFileError: UserFacingError, Equatable {
    public let path: String
    public let tensor: String?
    public let message: String

    public init(path: String, tensor: String? = nil, _ message: String) {
        self.path = path; self.tensor = tensor; self.message = message
    }

    public var description: String {
        tensor.map { "\(path): tensor \($0): \(message)" } ?? "\(path): \(message)"
    }
}

public enum Safetensors {
    /// Writes the named tensors, in the given order, as F32 (Float32 tensors) or F64, with
    /// string metadata. Atomic: a crash leaves either the old file or the new one.
    public static func write(_ tensors: [(String, Tensor)], metadata: [String: String] = [:], to path: String) throws {
        var header = "{"
        var offset = 0
        if !metadata.isEmpty {
            let entries = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            header += "\"__metadata__\":{\(entries.joined(separator: ","))},"
        }
        for (i, (name, t)) in tensors.enumerated() {
            let bytes = t.count * t.dtype.byteSize
            header += "\(jsonString(name)):{\"dtype\":\"\(t.dtype == .float32 ? "F32" : "F64")\","
                + "\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],"
                + "\"data_offsets\":[\(offset),\(offset + bytes)]}\(i + 1 < tensors.count ? "," : "")"
            offset += bytes
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }   // pad with spaces to 8 bytes
        var data = Data(capacity: 8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: headerBytes)
        for (_, t) in tensors {
            data.append(t.storageBytes.assumingMemoryBound(to: UInt8.self), count: t.count * t.dtype.byteSize)
        }
        try AtomicFile.write(data, to: path)
    }

    /// The largest header accepted (the format's own limit is 100 MB).
    public static let maxHeaderBytes = 100_000_000

    /// Reads every tensor of a file, in data order, with its metadata. Truncated data,
    /// offsets outside the file or overlapping, unknown dtypes and shapes that do not match
    /// their byte counts are errors naming the file and tensor.
    public static func read(_ path: String) throws -> (tensors: [(String, Tensor)], metadata: [String: String]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TensorFileError(path: path, "cannot read the file (missing or unreadable)")
        }
        return try parse(data, path: path)
    }

    /// How a tensor's values are stored in the file. BF16 and F16 (what GPU-trained
    /// checkpoints hold) are read into Float32 tensors, exactly: both widen without rounding.
    enum Stored {
        case f32, f64, bf16, f16
        var byteSize: Int { self == .f64 ? 8 : self == .f32 ? 4 : 2 }
        var dtype: DType { self == .f64 ? .float64 : .float32 }
    }

    /// One tensor's place in the file: a header entry, checked.
    struct Entry {
        let name: String, begin: Int, end: Int, shape: [Int], stored: Stored
        var dtype: DType { stored.dtype }
    }

    /// Parses the bytes of a safetensors file (`path` names it in errors).
    public static func parse(_ data: Data, path: String) throws -> (tensors: [(String, Tensor)], metadata: [String: String]) {
        guard data.count >= 8 else { throw TensorFileError(path: path, "truncated: \(data.count) bytes, no header length") }
        let declared = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declared <= UInt64(maxHeaderBytes) else {
            throw TensorFileError(path: path, "header of \(declared) bytes is larger than the format's \(maxHeaderBytes); not a safetensors file")
        }
        let headerLength = Int(declared)
        guard headerLength <= data.count - 8 else {
            throw TensorFileError(path: path, "truncated: header of \(headerLength) bytes, file has \(data.count)")
        }
        let headerData = data.subdata(in: data.startIndex + 8 ..< data.startIndex + 8 + headerLength)
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw TensorFileError(path: path, "the header is not a JSON object")
        }
        let dataStart = 8 + headerLength, dataSize = data.count - dataStart
        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            entries.append(try entry(name, value, dataSize: dataSize, path: path))
        }
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        for (a, b) in zip(entries, entries.dropFirst()) where b.begin < a.end {
            throw TensorFileError(path: path, tensor: b.name,
                                  "data_offsets [\(b.begin), \(b.end)] overlap those of \(a.name) [\(a.begin), \(a.end)]")
        }
        let tensors = data.withUnsafeBytes { raw -> [(String, Tensor)] in
            entries.map { e in
                let t = Tensor(uninitializedShape: e.shape, dtype: e.dtype)
                guard e.end > e.begin, let base = raw.baseAddress else { return (e.name, t) }
                let source = UnsafeRawPointer(base + dataStart + e.begin)
                switch e.stored {
                case .f32, .f64:
                    t.storageBytes.copyMemory(from: source, byteCount: e.end - e.begin)
                case .bf16:
                    let out = t.data(Float.self)
                    for i in 0..<t.count {
                        out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
                    }
                case .f16:
                    let out = t.data(Float.self)
                    for i in 0..<t.count {
                        out[i] = Float(Float16(bitPattern: UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
                    }
                }
                return (e.name, t)
            }
        }
        return (tensors, metadata)
    }

    /// Checks one header entry: dtype, a shape whose byte count (computed without overflow)
    /// matches its offsets, and offsets inside the data section.
    static func entry(_ name: String, _ value: Any, dataSize: Int, path: String) throws -> Entry {
        guard let info = value as? [String: Any], let dt = info["dtype"] as? String,
              let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
            throw TensorFileError(path: path, tensor: name, "header entry lacks dtype, shape or data_offsets")
        }
        let stored: Stored
        switch dt {
        case "F32": stored = .f32
        case "F64": stored = .f64
        case "BF16": stored = .bf16
        case "F16": stored = .f16
        default: throw TensorFileError(path: path, tensor: name, "dtype \(dt) is not supported (F32, F64, BF16 or F16)")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin >= 0, end >= begin else {
            throw TensorFileError(path: path, tensor: name, "bad data_offsets [\(begin), \(end)]")
        }
        guard end <= dataSize else {
            throw TensorFileError(path: path, tensor: name,
                                  "truncated: data ends at byte \(end) of the data section, which has \(dataSize)")
        }
        guard shape.count <= 8, shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorFileError(path: path, tensor: name, "shape \(shape) is not a tensor shape (at most 8 sizes, none negative)")
        }
        var bytes = stored.byteSize, overflow = false
        for d in shape where !overflow { (bytes, overflow) = bytes.multipliedReportingOverflow(by: d) }
        guard !overflow, bytes == end - begin else {
            throw TensorFileError(path: path, tensor: name,
                                  "shape \(shape) of \(dt) needs \(overflow ? "more than 2^63" : String(bytes)) bytes, offsets give \(end - begin)")
        }
        return Entry(name: name, begin: begin, end: end, shape: shape, stored: stored)
    }

    /// The index of the first NaN or infinite element of a float tensor, if any.
    public static func firstNonFinite(_ t: Tensor) -> Int? {
        switch t.dtype {
        case .float32:
            let p = t.data(Float.self)
            return (0..<t.count).first { !p[$0].isFinite }
        case .float64:
            let p = t.data(Double.self)
            return (0..<t.count).first { !p[$0].isFinite }
        }
    }

    static func jsonString(_ s: String) -> String {
        // An array of one string always serialises; the fallback is never taken.
        guard let data = try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes]) else { return "\"\"" }
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }
}
