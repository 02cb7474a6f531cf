// Config files as the seed writes them: Python assignments, one `name = value` per line,
// `#` comments; values int, float (1e-3 too), True/False, None, "str"/'str', and lists of
// strings built with [...], list * int and list + list (SPEC §3.5). Numbers may use + - *
// and parentheses. `--name=value` overrides use the same grammar (a bare word is a string).
import Foundation
import Tensor

/// A value from a config file.
public enum ConfigValue: Equatable, Sendable, CustomStringConvertible {
    case int(Int), float(Double), bool(Bool), none, string(String), list([String])

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .float(let v): return String(v)
        case .bool(let v): return v ? "True" : "False"
        case .none: return "None"
        case .string(let s): return "\"\(s)\""
        case .list(let l): return "[" + l.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        }
    }

    var typeName: String {
        switch self {
        case .int: return "int"
        case .float: return "float"
        case .bool: return "bool"
        case .none: return "None"
        case .string: return "str"
        case .list: return "list of str"
        }
    }
}

/// A config value in JSON (meta_S.json's user_config): a number, a bool, a string, a list
/// of strings, or null.
extension ConfigValue: Codable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .none }
        else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(Int.self) { self = .int(v) }
        else if let v = try? c.decode(Double.self) { self = .float(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else { self = .list(try c.decode([String].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let v): try c.encode(v)
        case .float(let v): try c.encode(v)
        case .bool(let v): try c.encode(v)
        case .none: try c.encodeNil()
        case .string(let s): try c.encode(s)
        case .list(let l): try c.encode(l)
        }
    }
}

/// The type a known key takes.
public enum ConfigType: Sendable {
    case int, float, bool, string
    /// A list of strings, or None.
    case stringList

    /// The name --help and docs/training.md give the type.
    public var name: String {
        switch self {
        case .int: return "int"
        case .float: return "float"
        case .bool: return "bool"
        case .string: return "str"
        case .stringList: return "list of str or None"
        }
    }

    /// The value converted to this type (an int where a float is wanted), or nil.
    public func accept(_ v: ConfigValue) -> ConfigValue? {
        switch (self, v) {
        case (.int, .int), (.float, .float), (.bool, .bool), (.string, .string), (.stringList, .list),
             (.stringList, .none), (.string, .none):
            return v
        case (.float, .int(let i)): return .float(Double(i))
        default: return nil
        }
    }
}

/// A config problem, located: "file:line:column: message".
public struct ConfigError: UserFacingError, Equatable {
    public let file: String, line: Int, column: Int, message: String

    public init(file: String, line: Int, column: Int, _ message: String) {
        self.file = file; self.line = line; self.column = column; self.message = message
    }

    public var description: String { line > 0 ? "\(file):\(line):\(column): \(message)" : "\(file): \(message)" }
}

/// Parsed assignments, checked against a schema of known keys (`TrainingKeys.byName`): their
/// types, and the defaults the accessors fall back to.
public struct ConfigFile: Sendable {
    /// The values the file and the overrides set.
    public private(set) var values: [String: ConfigValue] = [:]
    public let schema: [String: ConfigKey]
    /// Where each key's value was last set: file (or "command line"), line, column.
    public private(set) var locations: [String: (file: String, line: Int, column: Int)] = [:]

    /// An error located at the value of `key` (or at the file's start if it was never set).
    public func error(at key: String, _ message: String) -> ConfigError {
        let loc = locations[key] ?? (file: locations.values.first?.file ?? "config", line: 0, column: 0)
        return ConfigError(file: loc.file, line: loc.line, column: loc.column, message)
    }

    public init(schema: [String: ConfigKey]) { self.schema = schema }

    /// Parses `text` (the contents of `file`), every key checked against the schema.
    public static func parse(_ text: String, file: String, schema: [String: ConfigKey]) throws -> ConfigFile {
        var config = ConfigFile(schema: schema)
        for (i, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var lexer = ConfigLexer(String(rawLine), file: file, line: i + 1)
            let tokens = try lexer.tokens()
            if tokens.isEmpty { continue }
            if tokens[0].column > 1 {
                throw ConfigError(file: file, line: i + 1, column: 1, "unexpected indent: an assignment starts at the line's first column (Python says IndentationError)")
            }
            guard case .name(let key) = tokens[0].kind else {
                throw ConfigError(file: file, line: i + 1, column: tokens[0].column, "expected `name = value`")
            }
            guard tokens.count >= 2, tokens[1].kind == .symbol("=") else {
                let col = tokens.count >= 2 ? tokens[1].column : tokens[0].column + key.count
                throw ConfigError(file: file, line: i + 1, column: col, "expected `=` after \(key)")
            }
            guard tokens.count >= 3 else {
                throw ConfigError(file: file, line: i + 1, column: tokens[1].column + 1, "expected a value after `=`")
            }
            var parser = ConfigParser(tokens: Array(tokens[2...]), file: file, line: i + 1)
            let value = try parser.parseAll()
            try config.set(key, value, file: file, line: i + 1, keyColumn: tokens[0].column, valueColumn: tokens[2].column)
        }
        return config
    }

    /// Reads and parses a config file.
    public static func load(_ path: String, schema: [String: ConfigKey]) throws -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, line: 0, column: 0, "cannot read the config file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: 0, column: 0, "the config file is not UTF-8 text")
        }
        return try parse(text, file: path, schema: schema)
    }

    /// Applies `--name=value` (or `name=value`) from the command line.
    public mutating func override(_ argument: String) throws {
        let body = argument.hasPrefix("--") ? String(argument.dropFirst(2)) : argument
        guard let eq = body.firstIndex(of: "=") else {
            throw ConfigError(file: "command line", line: 1, column: 1, "override \(argument) must look like --name=value")
        }
        let key = String(body[..<eq]), text = String(body[body.index(after: eq)...])
        let keyColumn = argument.hasPrefix("--") ? 3 : 1
        let valueColumn = keyColumn + key.count + 1
        var value: ConfigValue
        var lexer = ConfigLexer(text, file: "command line", line: 1, columnOffset: valueColumn - 1)
        do {
            let tokens = try lexer.tokens()
            guard !tokens.isEmpty else { throw ConfigError(file: "command line", line: 1, column: valueColumn, "empty value") }
            var p = ConfigParser(tokens: tokens, file: "command line", line: 1)
            value = try p.parseAll()
        } catch let e as ConfigError {
            // A bare word is a string (--model_tag=d12, --data_dir=/data); for a key of
            // another type, why the value did not parse is the better message.
            guard let type = schema[key]?.type, type != .string, type.accept(.string(text)) == nil else {
                value = .string(text)
                try set(key, value, file: "command line", line: 1, keyColumn: keyColumn, valueColumn: valueColumn)
                return
            }
            throw ConfigError(file: e.file, line: e.line, column: e.column, "\(key) (\(type.name)): \(e.message)")
        }
        if schema[key]?.type == .string {   // --model_tag=d12 or --model_tag=12 name a string
            if case .string = value {} else { value = .string(text) }
        }
        try set(key, value, file: "command line", line: 1, keyColumn: keyColumn, valueColumn: valueColumn)
    }

    mutating func set(_ key: String, _ value: ConfigValue, file: String, line: Int, keyColumn: Int, valueColumn: Int) throws {
        guard let type = schema[key]?.type else {
            let near = nearestKey(key).map { "; did you mean \($0)?" } ?? ""
            throw ConfigError(file: file, line: line, column: keyColumn, "unknown key \(key)\(near)")
        }
        guard let v = type.accept(value) else {
            throw ConfigError(file: file, line: line, column: valueColumn,
                              "\(key) must be \(type.name), got \(value.typeName) \(value)")
        }
        values[key] = v
        locations[key] = (file, line, valueColumn)
    }

    /// The known key closest to `key` by edit distance, if reasonably close.
    func nearestKey(_ key: String) -> String? {
        let best = schema.keys.sorted().min { editDistance($0, key) < editDistance($1, key) }
        guard let best, editDistance(best, key) <= max(2, key.count / 3) else { return nil }
        return best
    }

    /// The value of `key`: as set, else the key's default (nil when it has none).
    public func value(_ key: String) -> ConfigValue? { values[key] ?? schema[key]?.defaultValue }

    public func int(_ key: String) -> Int? { if case .int(let v)? = value(key) { return v } else { return nil } }
    public func double(_ key: String) -> Double? { if case .float(let v)? = value(key) { return v } else { return nil } }
    public func bool(_ key: String) -> Bool? { if case .bool(let v)? = value(key) { return v } else { return nil } }
    public func string(_ key: String) -> String? { if case .string(let v)? = value(key) { return v } else { return nil } }
    public func list(_ key: String) -> [String]? { if case .list(let v)? = value(key) { return v } else { return nil } }

    /// The value of a key that has a default or must be set: an error naming the key when
    /// neither holds.
    public func requiredInt(_ key: String) throws -> Int { try required(key, int) }
    public func requiredDouble(_ key: String) throws -> Double { try required(key, double) }
    public func requiredBool(_ key: String) throws -> Bool { try required(key, bool) }
    public func requiredString(_ key: String) throws -> String { try required(key, string) }

    private func required<T>(_ key: String, _ read: (String) -> T?) throws -> T {
        guard let v = read(key) else {
            let help = schema[key].map { " (\($0.help))" } ?? ""
            throw error(at: key, "\(key) is required\(help)")
        }
        return v
    }
}

/// Levenshtein distance.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var prev = row[0]
        row[0] = i
        for j in 1...max(b.count, 1) where !b.isEmpty {
            let cur = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
            prev = cur
        }
    }
    return a.isEmpty ? b.count : row[b.count]
}
