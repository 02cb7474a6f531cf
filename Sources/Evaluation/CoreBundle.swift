// The CORE evaluation bundle as nanochat downloads it (the DCLM paper's in-context tasks):
//   core.yaml            `icl_tasks`: each task's label, icl_task_type, dataset_uri,
//                        num_fewshot (a list; its first entry is used) and continuation_delimiter
//                        (default " ")
//   eval_meta_data.csv   the columns "Eval Task" and "Random baseline" (a percentage)
//   eval_data/URI        one JSON object per line, the fields of its task type
// Every error names the file, and the line and field where there is one.
import Foundation
import Tensor
import Yams

/// A bundle, task file or line that cannot be read; the message names where.
public struct CoreBundleError: UserFacingError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// How a task is scored (nanochat's three `icl_task_type`s).
public enum CoreTaskType: String, Sendable, CaseIterable {
    /// One query, several choices; the choice the model finds most likely (the lowest mean
    /// loss of its tokens) must be the gold one.
    case multipleChoice = "multiple_choice"
    /// Several contexts, one continuation; the context under which the continuation is most
    /// likely must be the gold one.
    case schema
    /// One context and its continuation; every continuation token must be the model's
    /// greedy choice.
    case languageModeling = "language_modeling"
}

public struct CoreTask: Sendable {
    public init(label: String, type: CoreTaskType, datasetURI: String, fewShot: Int, delimiter: String, randomBaseline: Double) {
        self.label = label; self.type = type; self.datasetURI = datasetURI; self.fewShot = fewShot
        self.delimiter = delimiter; self.randomBaseline = randomBaseline
    }

    public let label: String
    public let type: CoreTaskType
    /// The task file, relative to the bundle's eval_data/.
    public let datasetURI: String
    public let fewShot: Int
    public let delimiter: String
    /// The accuracy of guessing, in percent (eval_meta_data.csv).
    public let randomBaseline: Double
}

/// One example of a task, its fields by task type.
public enum CoreItem: Sendable, Equatable {
    case multipleChoice(query: String, choices: [String], gold: Int)
    case schema(contextOptions: [String], continuation: String, gold: Int)
    case languageModeling(context: String, continuation: String)
}

/// An example and where it was read (`path:line`), for messages.
public struct CoreExample: Sendable, Equatable {
    public let item: CoreItem
    public let source: String
    public init(item: CoreItem, source: String) { self.item = item; self.source = source }
}

public struct CoreBundle: Sendable {
    public let directory: String
    public let tasks: [CoreTask]

    public var configPath: String { CoreBundle.configPath(directory) }
    public var metaPath: String { CoreBundle.metaPath(directory) }
    static func configPath(_ directory: String) -> String { (directory as NSString).appendingPathComponent("core.yaml") }
    static func metaPath(_ directory: String) -> String { (directory as NSString).appendingPathComponent("eval_meta_data.csv") }

    /// Reads core.yaml and eval_meta_data.csv (not the task files: `examples(of:)`).
    public init(directory: String) throws {
        self.directory = directory
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CoreBundleError("\(directory): no such directory (an eval bundle holds core.yaml, eval_meta_data.csv and eval_data/)")
        }
        let metaPath = CoreBundle.metaPath(directory)
        tasks = try CoreBundle.readTasks(CoreBundle.configPath(directory), baselines: try CoreBundle.readBaselines(metaPath), metaPath: metaPath)
    }

    /// The examples of `tasks` (all the bundle's when nil) in the order they are evaluated,
    /// cut to `maxPerTask` (`CorePrompts.evaluationOrder`), every task file read before any is
    /// scored. A few-shot count that the cut leaves too few examples for is an error naming
    /// `limit`, the setting that made the cut.
    public func evaluationSets(_ tasks: [CoreTask]? = nil, maxPerTask: Int?, limit: String) throws -> [(task: CoreTask, examples: [CoreExample])] {
        try (tasks ?? self.tasks).map { task in
            let examples = CorePrompts.evaluationOrder(try self.examples(of: task), maxPerTask: maxPerTask)
            guard task.fewShot < examples.count else {
                throw CoreBundleError("\(configPath): task \"\(task.label)\": \(task.fewShot)-shot needs more than \(task.fewShot) examples; \(limit) leaves \(examples.count)")
            }
            return (task, examples)
        }
    }

    static func text(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CoreBundleError("\(path): cannot read it (missing or not a file)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw CoreBundleError("\(path): not UTF-8 text") }
        return text
    }

    static func readTasks(_ path: String, baselines: [String: Double], metaPath: String) throws -> [CoreTask] {
        let source = try text(path)
        let root: Any?
        do {
            root = try Yams.load(yaml: source)
        } catch {
            throw CoreBundleError("\(path): not valid YAML: \(error)")
        }
        guard let top = root as? [String: Any], let list = top["icl_tasks"] as? [Any] else {
            throw CoreBundleError("\(path): expected a mapping with the list \"icl_tasks\"")
        }
        var tasks: [CoreTask] = [], seen = Set<String>()
        for (i, entry) in list.enumerated() {
            let at = "\(path): icl_tasks[\(i)]"
            guard let task = entry as? [String: Any] else { throw CoreBundleError("\(at): expected a mapping") }
            func string(_ key: String) throws -> String {
                guard let value = task[key] else { throw CoreBundleError("\(at): \"\(key)\" is missing") }
                guard let s = value as? String else { throw CoreBundleError("\(at): \"\(key)\" must be a string, got \(value)") }
                return s
            }
            let label = try string("label")
            let where_ = "\(path): task \"\(label)\""
            guard !seen.contains(label) else { throw CoreBundleError("\(where_): listed twice") }
            seen.insert(label)
            let typeName = try string("icl_task_type")
            guard let type = CoreTaskType(rawValue: typeName) else {
                throw CoreBundleError("\(where_): icl_task_type \"\(typeName)\" is not one of \(CoreTaskType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let uri = try string("dataset_uri")
            guard !uri.hasPrefix("/"), !uri.split(separator: "/").contains("..") else {
                throw CoreBundleError("\(where_): dataset_uri \"\(uri)\" must be a path inside eval_data/")
            }
            let shots: Int
            switch task["num_fewshot"] {
            case let list as [Any]:
                guard let first = list.first else { throw CoreBundleError("\(where_): num_fewshot is an empty list") }
                guard let n = first as? Int, !(first is Bool), n >= 0 else {
                    throw CoreBundleError("\(where_): num_fewshot[0] must be a whole number ≥ 0, got \(first)")
                }
                shots = n
            case let n as Int where n >= 0: shots = n
            case nil: throw CoreBundleError("\(where_): \"num_fewshot\" is missing")
            case let other?: throw CoreBundleError("\(where_): num_fewshot must be a list of whole numbers, got \(other)")
            }
            var delimiter = " "
            if let d = task["continuation_delimiter"] {
                guard let s = d as? String else { throw CoreBundleError("\(where_): continuation_delimiter must be a string, got \(d)") }
                delimiter = s
            }
            guard let baseline = baselines[label] else {
                throw CoreBundleError("\(metaPath): no \"Random baseline\" for the task \"\(label)\" of \(path)")
            }
            tasks.append(CoreTask(label: label, type: type, datasetURI: uri, fewShot: shots, delimiter: delimiter,
                                  randomBaseline: baseline))
        }
        guard !tasks.isEmpty else { throw CoreBundleError("\(path): icl_tasks lists no task") }
        return tasks
    }

    /// "Eval Task" → "Random baseline" from the CSV (a header row, then one row per task;
    /// fields may be quoted, with "" for a quote).
    static func readBaselines(_ path: String) throws -> [String: Double] {
        let rows = try CSVRows.parse(try text(path), path: path)
        guard let header = rows.first else { throw CoreBundleError("\(path): empty (expected a header row)") }
        guard let taskColumn = header.firstIndex(of: "Eval Task"), let baselineColumn = header.firstIndex(of: "Random baseline") else {
            throw CoreBundleError("\(path): the header must name the columns \"Eval Task\" and \"Random baseline\"")
        }
        var baselines: [String: Double] = [:]
        for (i, row) in rows.enumerated().dropFirst() where !(row.count == 1 && row[0].isEmpty) {
            let at = "\(path):\(i + 1)"
            guard row.count > max(taskColumn, baselineColumn) else {
                throw CoreBundleError("\(at): \(row.count) fields, the header has \(header.count)")
            }
            let field = row[baselineColumn].trimmingCharacters(in: .whitespaces)
            guard let value = Double(field), value.isFinite, (0..<100).contains(value) else {
                throw CoreBundleError("\(at): \"Random baseline\" must be a percentage in 0..<100, got \"\(field)\"")
            }
            baselines[row[taskColumn]] = value
        }
        return baselines
    }

    /// The examples of a task in file order. Blank lines are skipped.
    public func examples(of task: CoreTask) throws -> [CoreExample] {
        let path = ((directory as NSString).appendingPathComponent("eval_data") as NSString).appendingPathComponent(task.datasetURI)
        let source = try CoreBundle.text(path)
        var items: [CoreExample] = []
        for (i, line) in source.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard !line.allSatisfy({ $0.isWhitespace }) else { continue }
            let at = "\(path):\(i + 1)"
            items.append(CoreExample(item: try CoreBundle.item(line, type: task.type, at: at), source: at))
        }
        guard !items.isEmpty else { throw CoreBundleError("\(path): no examples") }
        if task.fewShot > 0, task.fewShot >= items.count {
            throw CoreBundleError("\(path): \(task.fewShot)-shot needs more than \(task.fewShot) examples, the file has \(items.count)")
        }
        return items
    }

    /// One line of a task file as an example of `type`; `at` names it in errors.
    public static func item(_ line: Substring, type: CoreTaskType, at: String) throws -> CoreItem {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
            throw CoreBundleError("\(at): not a JSON object")
        }
        /// A value as JSON writes it: a string quoted, a boolean as true or false.
        func shown(_ value: Any) -> String { (value as? String).map { "\"\($0)\"" } ?? JSONNumber.describe(value) }
        func string(_ key: String) throws -> String {
            guard let value = object[key] else { throw CoreBundleError("\(at): \"\(key)\" is missing") }
            guard let s = value as? String else { throw CoreBundleError("\(at): \"\(key)\" must be a string, got \(shown(value))") }
            return s
        }
        func strings(_ key: String) throws -> [String] {
            guard let value = object[key] else { throw CoreBundleError("\(at): \"\(key)\" is missing") }
            guard let list = value as? [Any], !list.isEmpty else { throw CoreBundleError("\(at): \"\(key)\" must be a non-empty list of strings") }
            return try list.enumerated().map { j, v in
                guard let s = v as? String else { throw CoreBundleError("\(at): \"\(key)\"[\(j)] must be a string, got \(shown(v))") }
                return s
            }
        }
        func gold(_ count: Int) throws -> Int {
            guard let value = object["gold"] else { throw CoreBundleError("\(at): \"gold\" is missing") }
            guard let g = JSONNumber.strictInt(value), (0..<count).contains(g) else {
                throw CoreBundleError("\(at): \"gold\" must be a whole number in 0..<\(count), got \(shown(value))")
            }
            return g
        }
        switch type {
        case .multipleChoice:
            let choices = try strings("choices")
            return .multipleChoice(query: try string("query"), choices: choices, gold: try gold(choices.count))
        case .schema:
            let options = try strings("context_options")
            return .schema(contextOptions: options, continuation: try string("continuation"), gold: try gold(options.count))
        case .languageModeling:
            return .languageModeling(context: try string("context"), continuation: try string("continuation"))
        }
    }
}

/// Comma-separated rows (RFC 4180: quoted fields may hold commas, newlines and "" for a quote).
enum CSVRows {
    static func parse(_ text: String, path: String) throws -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = ""
        var quoted = false, line = 1
        var chars = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = nil
        func next() -> Unicode.Scalar? {
            if let p = pending { pending = nil; return p }
            return chars.next()
        }
        while let c = next() {
            if quoted {
                if c == "\"" {
                    if let after = next() {
                        if after == "\"" { field.unicodeScalars.append("\"") } else { quoted = false; pending = after }
                    } else { quoted = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"" where field.isEmpty: quoted = true
            case ",": row.append(field); field = ""
            case "\r": continue
            case "\n":
                row.append(field); rows.append(row); row = []; field = ""; line += 1
            default: field.unicodeScalars.append(c)
            }
        }
        if quoted { throw CoreBundleError("\(path):\(line): a quoted field is not closed") }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }
}
