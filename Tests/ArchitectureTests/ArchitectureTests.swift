import Foundation
import Testing

/// docs/ARCHITECTURE.md lists what each Swift module imports; these tests hold the list to
/// the `import` lines of the sources, and the list to the layering the map draws.
struct ArchitectureTests {
    /// The repository's root, from this file's path (Tests/ArchitectureTests/...).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// The system's modules, which the list leaves out.
    static let system: Set<String> = ["Foundation", "Dispatch", "Synchronization", "Glibc", "Darwin", "Musl"]

    /// The modules and their imports, in the order of the map's fenced list between its markers.
    static func documented() throws -> [(module: String, imports: Set<String>)] {
        let text = try String(contentsOf: root.appendingPathComponent("docs/ARCHITECTURE.md"), encoding: .utf8)
        let begin = try #require(text.range(of: "<!-- imports: begin -->"), "docs/ARCHITECTURE.md has no import list")
        let end = try #require(text.range(of: "<!-- imports: end -->"), "docs/ARCHITECTURE.md's import list has no end")
        return text[begin.upperBound..<end.lowerBound].split(separator: "\n").filter { !$0.hasPrefix("```") }.compactMap { line in
            let words = line.split(separator: " ").map(String.init)
            return words.first.map { ($0, Set(words.dropFirst())) }
        }
    }

    /// The modules each Swift source folder imports: the first path component of every line
    /// that starts with `import` (or `@_exported import`, `import struct M.T`, ...).
    static func actual() throws -> [String: Set<String>] {
        let sources = root.appendingPathComponent("Sources")
        var out: [String: Set<String>] = [:]
        for folder in try FileManager.default.contentsOfDirectory(atPath: sources.path).sorted() {
            guard let files = FileManager.default.enumerator(atPath: sources.appendingPathComponent(folder).path) else { continue }
            var imports: Set<String> = []
            var swiftFiles = 0
            for case let file as String in files where file.hasSuffix(".swift") {
                swiftFiles += 1
                let text = try String(contentsOf: sources.appendingPathComponent(folder).appendingPathComponent(file), encoding: .utf8)
                for line in text.split(separator: "\n") {
                    var words = line.split(separator: " ").map(String.init)
                    if words.first?.hasPrefix("@") == true { words.removeFirst() }
                    guard words.first == "import", words.count >= 2 else { continue }
                    let path = ["typealias", "struct", "class", "enum", "protocol", "let", "var", "func"].contains(words[1]) && words.count >= 3
                        ? words[2] : words[1]
                    let module = String(path.split(separator: ".").first ?? "")
                    if !system.contains(module) { imports.insert(module) }
                }
            }
            if swiftFiles > 0 { out[folder] = imports }
        }
        return out
    }

    @Test func theMapsImportListIsWhatTheSourcesImport() throws {
        let rows = try Self.documented(), found = try Self.actual()
        let listed = Dictionary(rows, uniquingKeysWith: { a, _ in a })
        #expect(listed.count == rows.count, "a module is listed twice: \(rows.map(\.module))")
        #expect(found.count >= 10, "found only \(found.keys.sorted()) under Sources")
        for module in Set(listed.keys).union(found.keys).sorted() {
            guard let l = listed[module] else { Issue.record("\(module) imports \(found[module] ?? []) but docs/ARCHITECTURE.md does not list it"); continue }
            guard let f = found[module] else { Issue.record("docs/ARCHITECTURE.md lists \(module), which has no Swift sources"); continue }
            #expect(f.subtracting(l).isEmpty, "\(module) imports \(f.subtracting(l).sorted()), which docs/ARCHITECTURE.md does not list")
            #expect(l.subtracting(f).isEmpty, "docs/ARCHITECTURE.md lists \(module) importing \(l.subtracting(f).sorted()), which it does not")
        }
    }

    /// The layers: each module of the list imports only modules listed above it, or modules
    /// that are not Swift modules of this package's list (C targets, other packages).
    @Test func eachModuleImportsOnlyThoseAboveIt() throws {
        let rows = try Self.documented()
        let swiftModules = Set(rows.map(\.module))
        var above: Set<String> = []
        for (module, imports) in rows {
            let upward = imports.filter { swiftModules.contains($0) && !above.contains($0) }
            #expect(upward.isEmpty, "\(module) imports \(upward.sorted()), listed below it")
            above.insert(module)
        }
    }
}
