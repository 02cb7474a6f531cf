// Reading the files of a folder that may come from someone else (a downloaded checkpoint,
// a shared data directory, a Hugging Face or nanochat folder): no file that is a symbolic
// link out of its folder is followed, and JSON integers are read as integers only.
import Foundation

public enum FolderFile {
    /// Why `path` may not be read as a file of its folder, or nil when it may: a symbolic
    /// link whose target lies outside the folder (resolved, so links of links and `..`
    /// count). A link inside the folder, a missing file, and a folder that is itself a link
    /// (a run directory on another disk) are fine.
    public static func linkOutside(_ path: String) -> String? {
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK else { return nil }
        func real(_ p: String) -> String? {
            guard let r = realpath(p, nil) else { return nil }
            defer { free(r) }
            return String(cString: r)
        }
        let folder = (path as NSString).deletingLastPathComponent
        guard let inside = real(folder.isEmpty ? "." : folder) else { return nil }
        guard let target = real(path) else { return "a symbolic link to nothing" }
        guard target.hasPrefix(inside == "/" ? "/" : inside + "/") else {
            return "a symbolic link to \(target), outside its folder; this tool reads no file through a link out of "
                + "the folder it was given (link the folder itself, or copy the file in)"
        }
        return nil
    }

    /// Throws `TensorFileError` naming `path` when it is a link out of its folder.
    public static func requireInside(_ path: String) throws {
        if let why = linkOutside(path) { throw TensorFileError(path: path, why) }
    }

    /// The bytes of `path`, a file of a folder, or nil when there is no such file; a link out
    /// of the folder is an error.
    public static func contents(_ path: String) throws -> Data? {
        try requireInside(path)
        return FileManager.default.contents(atPath: path)
    }
}

public enum JSONNumber {
    /// A JSON integer as `JSONSerialization` gives it: not a boolean (which Foundation
    /// would read as 0 or 1) and not a number written with a fraction or exponent.
    public static func strictInt(_ value: Any?) -> Int? {
        guard let n = value as? NSNumber else { return nil }
        let type = String(cString: n.objCType)
        guard type != "c", type != "B", type != "d", type != "f" else { return nil }
        return n.intValue
    }

    /// `value` as written in a message: `true` for a boolean rather than Foundation's 1, and a
    /// string in quotes (so `"2"` is not shown as the number it is not).
    public static func describe(_ value: Any?) -> String {
        guard let value else { return "missing" }
        if let s = value as? String { return "\"\(s)\"" }
        if let n = value as? NSNumber, ["c", "B"].contains(String(cString: n.objCType)) { return n.boolValue ? "true" : "false" }
        return "\(value)"
    }
}
