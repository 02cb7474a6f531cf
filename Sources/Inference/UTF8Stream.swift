// Token bytes into text as they stream.

/// Turns a stream of token bytes into text, holding back an incomplete UTF-8 sequence until
/// its last byte arrives (a token can end inside a character).
public struct UTF8Stream {
    private var pending: [UInt8] = []
    public init() {}

    /// The text completed by `bytes`.
    public mutating func push(_ bytes: [UInt8]) -> String {
        pending += bytes
        var cut = pending.count
        // Back up over a trailing incomplete sequence: at most 3 continuation bytes after a lead.
        var k = pending.count - 1, back = 0
        while k >= 0 && back < 4 && pending[k] & 0xC0 == 0x80 { k -= 1; back += 1 }
        if k >= 0 {
            let lead = pending[k]
            let need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
            if pending.count - k < need { cut = k }
        }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// What is left, with U+FFFD for an incomplete sequence.
    public mutating func finish() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }
}
