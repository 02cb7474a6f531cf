// nanochat's pre-tokenizer split pattern (SPEC §3.3), written by hand as a scanner over
// Unicode scalars:
//
//   '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+
//
// Each piece is the leftmost alternative that matches at the current position, as the
// regex engines tiktoken uses decide it. Swift's `Regex` runs this pattern far too slowly
// (and has no possessive quantifiers); this scanner looks at each scalar a small constant
// number of times. \s is Unicode White_Space, \p{L} the letter categories, \p{N} the number
// categories; (?i) also accepts ſ (U+017F), which case-folds to s.

/// What the pattern needs to know about one scalar.
enum ScalarClass: UInt8 {
    case letter, number
    /// \r or \n (whitespace too).
    case newline
    /// Whitespace other than \r and \n.
    case space
    /// Neither whitespace, letter nor number.
    case other

    init(_ s: Unicode.Scalar) {
        let v = s.value
        if v < 128 {
            self = ScalarClass.ascii[Int(v)]
            return
        }
        let p = s.properties
        if p.isWhitespace { self = .space; return }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: self = .letter
        case .decimalNumber, .letterNumber, .otherNumber: self = .number
        default: self = .other
        }
    }

    private static let ascii: [ScalarClass] = (0..<128).map { v in
        switch UInt8(v) {
        case UInt8(ascii: "\r"), UInt8(ascii: "\n"): return .newline
        case 9, 11, 12, 32: return .space   // \t, \v, \f, space (0x1c-0x1f are not White_Space)
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"): return .letter
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        default: return .other
        }
    }

    var isWhitespace: Bool { self == .space || self == .newline }
}

/// Splits text into the pieces BPE works on, as UTF-8 byte ranges.
public enum SplitPattern {
    /// The pattern's text, as saved in tokenizer_info.json.
    public static let pattern =
        #"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"#

    /// The pieces of `text` as consecutive ranges of its UTF-8 bytes, covering all of them.
    public static func pieces(_ text: String) -> [Range<Int>] {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(text.utf8.count)
        scalars.append(contentsOf: text.unicodeScalars)
        let classes = scalars.map(ScalarClass.init)
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(scalars.count / 3)
        var i = 0, byte = 0
        while i < scalars.count {
            let end = pieceEnd(scalars, classes, from: i)
            var bytes = 0
            for k in i..<end { bytes += UTF8.width(scalars[k]) }
            ranges.append(byte..<(byte + bytes))
            byte += bytes
            i = end
        }
        return ranges
    }

    /// Folds the letters the contraction alternative compares, case-insensitively.
    private static func folded(_ s: Unicode.Scalar) -> Unicode.Scalar {
        if s.value == 0x17F { return "s" }                             // ſ folds to s
        if s.value >= 65 && s.value <= 90 { return Unicode.Scalar(s.value + 32)! }
        return s
    }

    /// End (exclusive) of the piece starting at scalar `i`: the first alternative that matches.
    static func pieceEnd(_ s: [Unicode.Scalar], _ c: [ScalarClass], from i: Int) -> Int {
        let n = s.count
        // 1. '(?i:[sdmt]|ll|ve|re)
        if s[i] == "'" && i + 1 < n {
            let a = folded(s[i + 1])
            if a == "s" || a == "d" || a == "m" || a == "t" { return i + 2 }
            if i + 2 < n {
                let b = folded(s[i + 2])
                if (a == "l" && b == "l") || (a == "v" && b == "e") || (a == "r" && b == "e") { return i + 3 }
            }
        }
        // 2. [^\r\n\p{L}\p{N}]?+\p{L}+ — the optional scalar is possessive: once taken it is
        // never given back, so a prefix not followed by a letter fails the alternative.
        var j = i
        if c[i] == .space || c[i] == .other { j = i + 1 }
        if j < n && c[j] == .letter {
            while j < n && c[j] == .letter { j += 1 }
            return j
        }
        // 3. \p{N}{1,2}
        if c[i] == .number { return i + 1 < n && c[i + 1] == .number ? i + 2 : i + 1 }
        // 4.  ?[^\s\p{L}\p{N}]++[\r\n]*
        j = i
        if s[i] == " " && i + 1 < n && c[i + 1] == .other { j = i + 1 }
        if c[j] == .other {
            while j < n && c[j] == .other { j += 1 }
            while j < n && c[j] == .newline { j += 1 }
            return j
        }
        // What is left starts with whitespace (letters, numbers and others matched above).
        var e = i
        while e < n && c[e].isWhitespace { e += 1 }
        // 5. \s*[\r\n] — greedy, so it ends after the run's last newline.
        var k = e - 1
        while k >= i && c[k] != .newline { k -= 1 }
        if k >= i { return k + 1 }
        // 6. \s+(?!\S) — the run to the end of text, or all but its last scalar.
        if e == n { return e }
        if e - i >= 2 { return e - 1 }
        // 7. \s+
        return e
    }
}
