// The calculator a model calls with <|python_start|>expr<|python_end|>, answering with
// <|output_start|>value<|output_end|>: what nanochat's engine evaluates (`use_calculator`),
// done without an interpreter. Two forms, as there:
//   - arithmetic on numbers with + - * / // and parentheses (commas in numbers ignored; `**`
//     refused), with Python's results: integers stay integers under + - * and //, / gives a
//     float, printed as Python prints it (7/2 → 3.5, 4/2 → 2.0);
//   - 'text'.count('t'): how many times a string occurs in another, without overlaps.
// Anything else, a division by zero, an integer past 64 bits or parentheses and signs nested
// more than 199 deep gives nil: no answer, as nanochat gives none for an expression it will
// not run. Commas are dropped first and the string form allows nanochat's characters only
// (ASCII letters, digits, space, . and _).
import Foundation

public enum Calculator {
    public enum Value: Equatable, Sendable {
        case int(Int), float(Double)

        /// As Python's str() prints it.
        public var text: String {
            switch self {
            case .int(let i): return String(i)
            case .float(let d):
                if d.isNaN { return "nan" }
                if d.isInfinite { return d < 0 ? "-inf" : "inf" }
                if d == d.rounded(), abs(d) < 1e16 { return String(format: "%.1f", d) }
                return "\(d)"
            }
        }

        var double: Double {
            switch self {
            case .int(let i): return Double(i)
            case .float(let d): return d
            }
        }
    }

    /// Longest expression evaluated; longer ones get no answer.
    public static let maxLength = 1000

    /// The answer to `expression`, or nil.
    public static func evaluate(_ expression: String) -> String? {
        guard expression.utf8.count <= maxLength else { return nil }
        let expr = expression.replacingOccurrences(of: ",", with: "")
        if let n = count(expr) { return String(n) }
        guard expr.allSatisfy({ "0123456789*+-/.() ".contains($0) }), !expr.contains("**") else { return nil }
        var parser = Parser(Array(expr.utf8.filter { $0 != UInt8(ascii: " ") }))
        guard let v = parser.expression(), parser.atEnd else { return nil }
        return v.text
    }

    /// 'haystack'.count('needle') (either quote), or nil if `text` is not that form.
    static func count(_ text: String) -> Int? {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'\"()._ ")
        guard text.allSatisfy({ allowed.contains($0) }) else { return nil }
        let s = text.trimmingCharacters(in: .whitespaces)
        var rest = Substring(s)
        func quoted() -> String? {
            guard let q = rest.first, q == "'" || q == "\"" else { return nil }
            rest = rest.dropFirst()
            guard let end = rest.firstIndex(of: q) else { return nil }
            defer { rest = rest[rest.index(after: end)...] }
            return String(rest[..<end])
        }
        guard let haystack = quoted(), rest.hasPrefix(".count(") else { return nil }
        rest = rest.dropFirst(".count(".count)
        guard let needle = quoted(), rest == ")" else { return nil }
        // Python counts an empty needle once per gap, including both ends.
        if needle.isEmpty { return haystack.count + 1 }
        var n = 0
        var search = haystack[...]
        while let r = search.range(of: needle) { n += 1; search = search[r.upperBound...] }
        return n
    }

    /// expression := term (('+' | '-') term)*; term := factor (('*' | '/' | '//') factor)*;
    /// factor := ('+' | '-') factor | number | '(' expression ')'.
    struct Parser {
        let bytes: [UInt8]
        var at = 0, depth = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        var atEnd: Bool { at == bytes.count }

        func peek(_ offset: Int = 0) -> UInt8? { at + offset < bytes.count ? bytes[at + offset] : nil }

        mutating func expression() -> Value? {
            guard var left = term() else { return nil }
            while let op = peek(), op == UInt8(ascii: "+") || op == UInt8(ascii: "-") {
                at += 1
                guard let right = term() else { return nil }
                guard let v = Parser.apply(op == UInt8(ascii: "+") ? "+" : "-", left, right) else { return nil }
                left = v
            }
            return left
        }

        mutating func term() -> Value? {
            guard var left = factor() else { return nil }
            while let op = peek(), op == UInt8(ascii: "*") || op == UInt8(ascii: "/") {
                var name = op == UInt8(ascii: "*") ? "*" : "/"
                at += 1
                if name == "/" && peek() == UInt8(ascii: "/") { name = "//"; at += 1 }
                guard let right = factor(), let v = Parser.apply(name, left, right) else { return nil }
                left = v
            }
            return left
        }

        mutating func factor() -> Value? {
            depth += 1
            defer { depth -= 1 }
            guard depth < 200, let c = peek() else { return nil }
            if c == UInt8(ascii: "-") || c == UInt8(ascii: "+") {
                at += 1
                guard let v = factor() else { return nil }
                if c == UInt8(ascii: "+") { return v }
                switch v {
                case .int(let i): return i == Int.min ? nil : .int(-i)
                case .float(let d): return .float(-d)
                }
            }
            if c == UInt8(ascii: "(") {
                at += 1
                guard let v = expression(), peek() == UInt8(ascii: ")") else { return nil }
                at += 1
                return v
            }
            return number()
        }

        mutating func number() -> Value? {
            let start = at
            while let c = peek(), (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: ".") { at += 1 }
            let text = String(decoding: bytes[start..<at], as: UTF8.self)
            guard !text.isEmpty, text != "." else { return nil }
            if text.contains(".") {
                guard text.filter({ $0 == "." }).count == 1, let d = Double(text) else { return nil }
                return .float(d)
            }
            // Python reads "007" as a syntax error; so do we.
            guard text == "0" || !text.hasPrefix("0"), let i = Int(text) else { return nil }
            return .int(i)
        }

        /// Python's float `x // y` (CPython's float_floor_div): through fmod, so `1 // 0.1` is
        /// 9.0 as there (0.1 is a little over a tenth), not floor(1 / 0.1) = 10.0.
        static func floorDivide(_ x: Double, _ y: Double) -> Double {
            var mod = fmod(x, y)
            var div = (x - mod) / y
            if mod != 0 {
                if (y < 0) != (mod < 0) { mod += y; div -= 1 }
            }
            guard div != 0 else { return Double(signOf: x / y, magnitudeOf: 0) }
            var floored = div.rounded(.down)
            if div - floored > 0.5 { floored += 1 }
            return floored
        }

        static func apply(_ op: String, _ a: Value, _ b: Value) -> Value? {
            if case .int(let x) = a, case .int(let y) = b {
                switch op {
                case "+": let (r, o) = x.addingReportingOverflow(y); return o ? nil : .int(r)
                case "-": let (r, o) = x.subtractingReportingOverflow(y); return o ? nil : .int(r)
                case "*": let (r, o) = x.multipliedReportingOverflow(by: y); return o ? nil : .int(r)
                case "//":
                    guard y != 0, !(x == Int.min && y == -1) else { return nil }
                    // Python floors toward negative infinity.
                    let q = x / y
                    return .int((x % y != 0 && ((x < 0) != (y < 0))) ? q - 1 : q)
                default:
                    guard y != 0 else { return nil }
                    return .float(Double(x) / Double(y))
                }
            }
            let (x, y) = (a.double, b.double)
            switch op {
            case "+": return .float(x + y)
            case "-": return .float(x - y)
            case "*": return .float(x * y)
            case "//": return y == 0 ? nil : .float(floorDivide(x, y))
            default: return y == 0 ? nil : .float(x / y)
            }
        }
    }
}
