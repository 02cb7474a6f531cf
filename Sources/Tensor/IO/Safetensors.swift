// safetensors, read and written by hand (the format is small): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
// then the raw row-major data. Offsets count from the end of the header.
import Foundation

/// An error reading or writing a tensor file, naming the file and, where it applies, the tensor.
public struct TensorFileError: Error, CustomStringConvertible, Equatable {
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

    /// Reads every tensor of a file, in header order, with its metadata. Truncated data,
    /// offsets outside the file, unknown dtypes and shapes that do not match their byte
    /// counts are errors naming the file and tensor.
    public static func read(_ path: String) throws -> (tensors: [(String, Tensor)], metadata: [String: String]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TensorFileError(path: path, "cannot read the file (missing or unreadable)")
        }
        guard data.count >= 8 else { throw TensorFileError(path: path, "truncated: \(data.count) bytes, no header length") }
        let headerLength = data.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        guard headerLength <= data.count - 8 else {
            throw TensorFileError(path: path, "truncated: header of \(headerLength) bytes, file has \(data.count)")
        }
        let headerData = data.subdata(in: 8..<(8 + headerLength))
        guard let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw TensorFileError(path: path, "the header is not a JSON object")
        }
        let dataStart = 8 + headerLength, dataSize = data.count - dataStart
        var metadata: [String: String] = [:]
        var entries: [(name: String, begin: Int, end: Int, shape: [Int], dtype: DType)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let info = value as? [String: Any], let dt = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw TensorFileError(path: path, tensor: name, "header entry lacks dtype, shape or data_offsets")
            }
            let dtype: DType
            switch dt {
            case "F32": dtype = .float32
            case "F64": dtype = .float64
            default: throw TensorFileError(path: path, tensor: name, "dtype \(dt) is not supported (F32 or F64)")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin else {
                throw TensorFileError(path: path, tensor: name, "bad data_offsets [\(begin), \(end)]")
            }
            guard end <= dataSize else {
                throw TensorFileError(path: path, tensor: name,
                                      "truncated: data ends at byte \(end) of the data section, which has \(dataSize)")
            }
            guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) * dtype.byteSize == end - begin else {
                throw TensorFileError(path: path, tensor: name,
                                      "shape \(shape) of \(dt) needs \(shape.reduce(1, *) * dtype.byteSize) bytes, offsets give \(end - begin)")
            }
            entries.append((name, begin, end, shape, dtype))
        }
        entries.sort { $0.begin < $1.begin }
        let tensors = entries.map { e -> (String, Tensor) in
            let t = Tensor(uninitializedShape: e.shape, dtype: e.dtype)
            data.withUnsafeBytes { raw in
                t.storageBytes.copyMemory(
                    from: raw.baseAddress! + dataStart + e.begin, byteCount: e.end - e.begin)
            }
            return (e.name, t)
        }
        return (tensors, metadata)
    }

    static func jsonString(_ s: String) -> String {
        // An array of one string always serialises; the fallback is never taken.
        guard let data = try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes]) else { return "\"\"" }
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }
}
