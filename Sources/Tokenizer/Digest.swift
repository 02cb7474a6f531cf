// A 64-bit FNV-1a digest: a tokenizer's identity (its ranks and pattern), and the settings,
// parameter list and executable that data-parallel ranks compare at start-up.
import Foundation

/// FNV-1a over bytes.
public struct Digest {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func add(_ bytes: some Sequence<UInt8>) {
        for b in bytes { value = (value ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
    }

    public mutating func add(_ text: String) { add(text.utf8); add([0]) }

    /// The bytes of this process's executable (nil when it cannot be read).
    public static func executable() -> UInt64? {
        guard let data = FileManager.default.contents(atPath: "/proc/self/exe") else { return nil }
        var d = Digest()
        data.withUnsafeBytes { d.add($0) }
        return d.value
    }
}
