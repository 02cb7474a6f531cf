// The lexer and expression parser behind ConfigFile.

struct ConfigToken: Equatable {
    enum Kind: Equatable {
        case name(String), int(Int), float(Double), string(String), symbol(Character)
    }
    let kind: Kind
    let column: Int
}

/// Splits one line into tokens; stops at a `#` outside strings.
struct ConfigLexer {
    let chars: [Character]
    let file: String, line: Int, columnOffset: Int
    var i = 0

    init(_ text: String, file: String, line: Int, columnOffset: Int = 0) {
        chars = Array(text); self.file = file; self.line = line; self.columnOffset = columnOffset
    }

    func error(_ message: String, at index: Int) -> ConfigError {
        ConfigError(file: file, line: line, column: columnOffset + index + 1, message)
    }

    mutating func tokens() throws -> [ConfigToken] {
        var out: [ConfigToken] = []
        while i < chars.count {
            let c = chars[i], start = i
            if c == "#" { break }
            if c == " " || c == "\t" || c == "\r" { i += 1; continue }
            if c.isLetter || c == "_" {
                while i < chars.count && (chars[i].isLetter || chars[i].isNumber || chars[i] == "_") { i += 1 }
                out.append(ConfigToken(kind: .name(String(chars[start..<i])), column: columnOffset + start + 1))
            } else if c.isNumber || (c == "." && i + 1 < chars.count && chars[i + 1].isNumber) {
                out.append(try number(start))
            } else if c == "\"" || c == "'" {
                i += 1
                var s = ""
                while i < chars.count && chars[i] != c {
                    if chars[i] == "\\" && i + 1 < chars.count {
                        s.append(contentsOf: try escape())
                        continue
                    }
                    s.append(chars[i]); i += 1
                }
                guard i < chars.count else { throw error("unterminated string", at: start) }
                i += 1
                out.append(ConfigToken(kind: .string(s), column: columnOffset + start + 1))
            } else if "=[](),*+-".contains(c) {
                i += 1
                out.append(ConfigToken(kind: .symbol(c), column: columnOffset + start + 1))
            } else {
                throw error("unexpected character `\(c)`", at: start)
            }
        }
        return out
    }

    /// The escape at `i` (a backslash and what follows) as Python reads it in a string:
    /// `\n \t \r \a \b \f \v \\ \' \"`, one to three octal digits (`\0`, `\012`),
    /// `\xHH`, `\uHHHH`, `\UHHHHHHHH`; any other keeps its backslash, as Python does.
    mutating func escape() throws -> String {
        let start = i
        let c = chars[i + 1]
        i += 2
        switch c {
        case "n": return "\n"
        case "t": return "\t"
        case "r": return "\r"
        case "0"..."7":
            // c and up to two more octal digits: at most 0o777, always a character.
            var code: UInt32 = 0, j = i - 1
            while j < i + 2, j < chars.count, let d = chars[j].hexDigitValue, d < 8 { code = code * 8 + UInt32(d); j += 1 }
            i = j
            return Unicode.Scalar(code).map { String(Character($0)) } ?? ""
        case "a": return "\u{07}"
        case "b": return "\u{08}"
        case "f": return "\u{0C}"
        case "v": return "\u{0B}"
        case "\\", "'", "\"": return String(c)
        case "x", "u", "U":
            let count = c == "x" ? 2 : c == "u" ? 4 : 8
            let digits = i + count <= chars.count ? String(chars[i..<(i + count)]) : ""
            guard digits.count == count, digits.allSatisfy(\.isHexDigit), let code = UInt32(digits, radix: 16),
                  let scalar = Unicode.Scalar(code) else {
                throw error("malformed \\\(c) escape: it takes \(count) hex digits\(c == "x" ? "" : " naming a character")", at: start)
            }
            i += count
            return String(Character(scalar))
        default: return "\\" + String(c)
        }
    }

    mutating func number(_ start: Int) throws -> ConfigToken {
        var isFloat = false
        while i < chars.count && (chars[i].isNumber || chars[i] == "_") { i += 1 }
        if i < chars.count && chars[i] == "." { isFloat = true; i += 1; while i < chars.count && chars[i].isNumber { i += 1 } }
        if i < chars.count && (chars[i] == "e" || chars[i] == "E") {
            isFloat = true; i += 1
            if i < chars.count && (chars[i] == "+" || chars[i] == "-") { i += 1 }
            guard i < chars.count && chars[i].isNumber else { throw error("malformed number", at: start) }
            while i < chars.count && chars[i].isNumber { i += 1 }
        }
        let text = String(chars[start..<i]).replacingOccurrences(of: "_", with: "")
        let column = columnOffset + start + 1
        if isFloat {
            guard let v = Double(text) else { throw error("malformed number \(text)", at: start) }
            guard v.isFinite else { throw error("number \(text) is too large for a 64-bit float", at: start) }
            return ConfigToken(kind: .float(v), column: column)
        }
        if text.count > 1 && text.hasPrefix("0") && text.contains(where: { $0 != "0" }) {
            throw error("leading zeros in a decimal integer are not allowed (\(text)); Python refuses them too: write \(text.drop(while: { $0 == "0" }))", at: start)
        }
        guard let v = Int(text) else { throw error("integer \(text) out of range", at: start) }
        return ConfigToken(kind: .int(v), column: column)
    }
}

/// expr := term (('+' | '-') term)*;  term := unary ('*' unary)*;  unary := '-' unary | atom
/// atom := number | string | True | False | None | '[' strings ']' | '(' expr ')'
struct ConfigParser {
    let tokens: [ConfigToken]
    let file: String, line: Int
    var i = 0
    /// Nesting of parentheses and unary minuses so far; bounded, so a crafted value cannot
    /// exhaust the stack.
    var depth = 0
    static let maxDepth = 100

    init(tokens: [ConfigToken], file: String, line: Int) {
        self.tokens = tokens; self.file = file; self.line = line
    }

    func error(_ message: String, _ token: ConfigToken? = nil) -> ConfigError {
        let col = token?.column ?? (tokens.last.map { $0.column + 1 } ?? 1)
        return ConfigError(file: file, line: line, column: col, message)
    }

    var peek: ConfigToken? { i < tokens.count ? tokens[i] : nil }

    mutating func parseAll() throws -> ConfigValue {
        let v = try expression()
        if let extra = peek { throw error("unexpected `\(describe(extra))` after the value", extra) }
        return v
    }

    mutating func expression() throws -> ConfigValue {
        var left = try term()
        while let t = peek, t.kind == .symbol("+") || t.kind == .symbol("-") {
            i += 1
            let right = try term()
            left = try combine(left, t, right)
        }
        return left
    }

    mutating func term() throws -> ConfigValue {
        var left = try unary()
        while let t = peek, t.kind == .symbol("*") {
            i += 1
            let right = try unary()
            left = try combine(left, t, right)
        }
        return left
    }

    mutating func unary() throws -> ConfigValue {
        if let t = peek, t.kind == .symbol("-") {
            i += 1
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maxDepth else { throw error("the value nests more than \(Self.maxDepth) deep", t) }
            switch try unary() {
            case .int(let v):
                guard v != .min else { throw error("integer overflow: -(\(v)) is outside the 64-bit range", t) }
                return .int(-v)
            case .float(let v): return .float(-v)
            default: throw error("`-` applies to numbers only", t)
            }
        }
        return try atom()
    }

    mutating func atom() throws -> ConfigValue {
        guard let t = peek else { throw error("expected a value") }
        i += 1
        switch t.kind {
        case .int(let v): return .int(v)
        case .float(let v): return .float(v)
        case .string(let s): return .string(s)
        case .name("True"): return .bool(true)
        case .name("False"): return .bool(false)
        case .name("None"): return .none
        case .name(let n): throw error("unknown name `\(n)`; values are numbers, strings, True, False, None or lists", t)
        case .symbol("("):
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maxDepth else { throw error("the value nests more than \(Self.maxDepth) deep", t) }
            let v = try expression()
            guard let close = peek, close.kind == .symbol(")") else { throw error("expected `)`", peek) }
            i += 1
            return v
        case .symbol("["):
            var items: [String] = []
            if let close = peek, close.kind == .symbol("]") { i += 1; return .list(items) }
            while true {
                guard let item = peek else { throw error("expected a string or `]`") }
                guard case .string(let s) = item.kind else { throw error("list entries must be strings", item) }
                items.append(s)
                i += 1
                guard let sep = peek else { throw error("expected `,` or `]`") }
                i += 1
                if sep.kind == .symbol("]") { return .list(items) }
                guard sep.kind == .symbol(",") else { throw error("expected `,` or `]`", sep) }
                if let close = peek, close.kind == .symbol("]") { i += 1; return .list(items) }   // trailing comma
            }
        default: throw error("unexpected `\(describe(t))`", t)
        }
    }

    func combine(_ a: ConfigValue, _ op: ConfigToken, _ b: ConfigValue) throws -> ConfigValue {
        guard case .symbol(let s) = op.kind else { throw error("bad operator", op) }
        switch (a, s, b) {
        case (.list(let l), "*", .int(let n)), (.int(let n), "*", .list(let l)):
            guard n >= 0 else { throw error("cannot repeat a list \(n) times", op) }
            if l.isEmpty { return .list([]) }
            guard n <= ConfigParser.maxListLength / l.count else {
                throw error("a list of \(l.count) × \(n) entries is longer than the \(ConfigParser.maxListLength) a config list may hold", op)
            }
            return .list(Array([[String]](repeating: l, count: n).joined()))
        case (.list(let l), "+", .list(let r)):
            guard l.count + r.count <= ConfigParser.maxListLength else {
                throw error("a list of \(l.count + r.count) entries is longer than the \(ConfigParser.maxListLength) a config list may hold", op)
            }
            return .list(l + r)
        case (.int(let x), "+", .int(let y)): return try checked(x.addingReportingOverflow(y), x, s, y, op)
        case (.int(let x), "-", .int(let y)): return try checked(x.subtractingReportingOverflow(y), x, s, y, op)
        case (.int(let x), "*", .int(let y)): return try checked(x.multipliedReportingOverflow(by: y), x, s, y, op)
        default:
            if let x = a.number, let y = b.number {
                let v: Double
                switch s {
                case "+": v = x + y
                case "-": v = x - y
                default: v = x * y
                }
                guard v.isFinite else { throw error("\(x) \(s) \(y) is too large for a 64-bit float", op) }
                return .float(v)
            }
            throw error("cannot apply `\(s)` to \(a.typeName) and \(b.typeName)", op)
        }
    }

    /// The most entries a list may have (a block pattern has one per layer).
    static let maxListLength = 100_000

    func checked(_ r: (partialValue: Int, overflow: Bool), _ x: Int, _ s: Character, _ y: Int, _ op: ConfigToken) throws -> ConfigValue {
        guard !r.overflow else { throw error("integer overflow: \(x) \(s) \(y) is outside the 64-bit range", op) }
        return .int(r.partialValue)
    }

    func describe(_ t: ConfigToken) -> String {
        switch t.kind {
        case .name(let n): return n
        case .int(let v): return String(v)
        case .float(let v): return String(v)
        case .string(let s): return "\"\(s)\""
        case .symbol(let c): return String(c)
        }
    }
}

extension ConfigValue {
    var number: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .float(let v): return v
        default: return nil
        }
    }
}
