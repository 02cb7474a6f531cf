// The rule for commands that write a folder of results (export, import, init, prepare,
// tokenizer train): an output that already holds results is refused unless the user says to
// replace it, and a replacement takes the place of the old results only once it is complete.
import Foundation

public enum OutputDirectory {
    /// The names in `dir` other than a run lock and temporary files; none when it is missing.
    public static func contents(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0 != ".lock" && !$0.contains(".tmp-") && !$0.hasPrefix(".next-") }.sorted()
    }

    /// Throws unless `dir` is missing or holds nothing of `names` (nil: nothing at all).
    /// `what` says what the command writes; `flag` how to allow the replacement, if it can.
    public static func requireEmpty(_ dir: String, of names: ((String) -> Bool)? = nil, what: String, flag: String?) throws {
        let found = contents(dir).filter { names?($0) ?? true }
        guard !found.isEmpty else { return }
        let shown = found.prefix(4).joined(separator: ", ") + (found.count > 4 ? ", ..." : "")
        throw TensorFileError(path: dir, "already holds \(shown); writing \(what) there would replace "
                              + (flag.map { "them: give \($0) to replace them, or another directory" } ?? "them: give an empty or new directory"))
    }

    /// Writes through `body` into a fresh folder inside `dir` (`.next-PID`), then moves each
    /// file written into `dir`, over what had its name (folders merged file by file): an
    /// interrupted write leaves the earlier results as they were, and other files are kept. Staging folders a
    /// killed write left are removed first.
    /// `last` names the entry moved in after all others (an index that names the rest).
    public static func install<T>(into dir: String, last: String? = nil, _ body: (String) throws -> T) throws -> T {
        let fm = FileManager.default
        try AtomicFile.makeDirectories(dir)
        for name in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix(".next-") {
            guard let pid = Int32(name.dropFirst(6)), pid > 0, pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            try? fm.removeItem(atPath: "\(dir)/\(name)")
        }
        AtomicFile.removeStale(in: dir)
        let stage = "\(dir)/.next-\(getpid())"
        try? fm.removeItem(atPath: stage)
        try AtomicFile.makeDirectories(stage)
        defer { try? fm.removeItem(atPath: stage) }
        let result = try body(stage)
        try move(contentsOf: stage, into: dir, last: last)
        let dfd = open(dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
        return result
    }

    /// Moves every file under `source` to the same place under `target`, `last` (a name at
    /// the top) after the rest.
    static func move(contentsOf source: String, into target: String, last: String?) throws {
        let fm = FileManager.default
        let names = try fm.contentsOfDirectory(atPath: source).sorted()
        for name in names.filter({ $0 != last }) + names.filter({ $0 == last }) {
            let from = "\(source)/\(name)", to = "\(target)/\(name)"
            var fromDir: ObjCBool = false, toDir: ObjCBool = false
            _ = fm.fileExists(atPath: from, isDirectory: &fromDir)
            let exists = fm.fileExists(atPath: to, isDirectory: &toDir)
            if exists && fromDir.boolValue && toDir.boolValue {
                try move(contentsOf: from, into: to, last: nil)
                continue
            }
            if exists && toDir.boolValue {
                do { try fm.removeItem(atPath: to) } catch {
                    throw TensorFileError(path: to, "cannot replace it: \(error.localizedDescription)")
                }
            }
            guard rename(from, to) == 0 else {
                throw TensorFileError(path: to, "cannot move the new file into place: \(String(cString: strerror(errno)))")
            }
        }
    }
}
