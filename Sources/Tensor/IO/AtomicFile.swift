// Atomic file writes: what every file the project saves (checkpoints, shards, tokenizers,
// metrics summaries) goes through.
import Foundation

/// Writing a file so that a crash mid-write never leaves a half-written file under its name:
/// temporary file in the same directory, fsync, rename over the target, fsync the directory.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { fd in writeAll(fd, data) }
    }

    /// Writes a file through `body`, which writes to the open temporary file and returns nil
    /// or the errno of its failure (as `writeAll` does); then fsync, rename, fsync the
    /// directory. For files too large to gather into one `Data` first.
    public static func write(to path: String, _ body: (Int32) -> Int32?) throws {
        let dir = AtomicFile.parentDirectory(path)
        let tmp = "\(path).tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw TensorFileError(path: tmp, "cannot create: \(String(cString: strerror(errno)))") }
        var failure = body(fd)
        if failure == nil && fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure == nil && rename(tmp, path) != 0 { failure = errno }
        if let failure {
            unlink(tmp)
            throw TensorFileError(path: path, "cannot write: \(String(cString: strerror(failure)))")
        }
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    /// Writes all of `data` to `fd` (retrying short writes and interruptions); nil on
    /// success, else the errno of the failure (ENOSPC when a write wrote nothing).
    public static func writeAll(_ fd: Int32, _ data: Data) -> Int32? {
        data.withUnsafeBytes { writeAll(fd, $0) }
    }

    public static func writeAll(_ fd: Int32, _ raw: UnsafeRawBufferPointer) -> Int32? {
        guard let base = raw.baseAddress else { return nil }
        var done = 0
        while done < raw.count {
            let n = Glibc.write(fd, base + done, raw.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return n < 0 ? errno : ENOSPC }
            done += n
        }
        return nil
    }

    /// The directory that holds `path`: "runs/d12" → "runs", "/data" → "/", "a" and "a/" → ""
    /// (none given: the current one). Trailing slashes are not components. (Foundation's
    /// `deletingLastPathComponent` traps on some one-character strings.)
    public static func parentDirectory(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "" }
        var parent = p[..<slash]
        while parent.count > 1 && parent.hasSuffix("/") { parent = parent.dropLast() }
        return parent.isEmpty ? "/" : String(parent)
    }

    /// Creates `path` and any missing parents (as `mkdir -p`); the error names the path and
    /// the system's reason (a file in the way, permission denied, a read-only file system).
    public static func makeDirectories(_ path: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw TensorFileError(path: path, "cannot create the directory: a file of that name is in the way") }
            return
        }
        let parent = parentDirectory(path)
        if !parent.isEmpty && parent != path { try makeDirectories(parent) }
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw TensorFileError(path: path, "cannot create the directory: \(String(cString: strerror(errno)))")
        }
    }

    /// Deletes the temporary files (`NAME.tmp-PID`) that writers killed mid-write left in
    /// `dir`: those whose process no longer exists. Returns the names removed.
    @discardableResult
    public static func removeStale(in dir: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        var removed: [String] = []
        for name in names {
            guard let dot = name.range(of: ".tmp-", options: .backwards),
                  let pid = Int32(name[dot.upperBound...]), pid > 0 else { continue }
            guard pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            if unlink("\(dir)/\(name)") == 0 { removed.append(name) }
        }
        return removed
    }

    /// `value` as pretty-printed JSON with sorted keys, written atomically (a sweep's run.json
    /// marks its run finished, so it must never exist half-written).
    public static func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try write(try encoder.encode(value), to: path)
    }
}
