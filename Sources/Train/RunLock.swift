// One writer per output directory: a training run, an SFT run and a sweep hold an exclusive flock on DIR/.lock
// for as long as they run, and write their pid, host and start time into it so a second run
// can say who holds it. The kernel drops the lock when its process ends, however it ends,
// so the lock of a killed run is simply taken by the next one.
import Foundation
import Tensor

public final class RunLock {
    public static let fileName = ".lock"

    public let path: String
    private let fd: Int32

    /// Takes the lock of `dir` (creating the directory when missing), or throws naming the
    /// process that holds it.
    public init(dir: String, purpose: String) throws {
        try AtomicFile.makeDirectories(dir)
        path = "\(dir)/\(RunLock.fileName)"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TrainingError("\(path): cannot open the run's lock file: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            let holder = RunLock.holder(fd)
            close(fd)
            if reason == EWOULDBLOCK {
                throw TrainingError("\(dir) is in use by another run (\(holder ?? "holder unknown")); "
                                    + "wait for it to finish, stop it, or give another output directory")
            }
            throw TrainingError("\(path): cannot lock: \(String(cString: strerror(reason)))")
        }
        self.fd = fd
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let stamp = ISO8601DateFormatter().string(from: Date())
        let text = "pid \(getpid()) on \(cText(host)), \(purpose) since \(stamp)\n"
        ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// What the holder wrote into the lock file, without its newline.
    static func holder(_ fd: Int32) -> String? {
        var buf = [UInt8](repeating: 0, count: 512)
        let n = pread(fd, &buf, buf.count, 0)
        guard n > 0 else { return nil }
        let text = String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    deinit { close(fd) }
}
