// One writer per output directory: a training run, an SFT run and a sweep hold an exclusive flock on DIR/.lock
// for as long as they run, and write their pid, host and start time into it so a second run
// can say who holds it. The kernel drops the lock when its process ends, however it ends,
// so the lock of a killed run is simply taken by the next one.
//
// A lock this process let go of can outlive its close for a moment: a child process that
// another thread is starting holds copies of every descriptor from its fork until its exec
// closes them (the lock's is close-on-exec), and a flock belongs to the open file, not the
// descriptor. A lock that names this process, on a directory it no longer holds, is waited
// for (up to two seconds) instead of refused.
import Foundation
import Synchronization
import Tensor

public final class RunLock {
    public static let fileName = ".lock"

    public let path: String
    private let fd: Int32

    /// The lock files this process holds.
    private static let held = Mutex<Set<String>>([])

    /// How long a lock this process let go of may stay taken by a child it is starting.
    static let ownLockWait = 2.0

    /// Takes the lock of `dir` (creating the directory when missing), or throws naming the
    /// process that holds it.
    public init(dir: String, purpose: String) throws {
        try AtomicFile.makeDirectories(dir)
        let path = "\(dir)/\(RunLock.fileName)"
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TrainingError("\(path): cannot open the run's lock file: \(String(cString: strerror(errno)))") }
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let me = "pid \(getpid()) on \(cText(host)), "
        let start = clockNow()
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let reason = errno
            let holder = RunLock.holder(fd)
            if reason == EWOULDBLOCK, holder?.hasPrefix(me) == true, !RunLock.held.withLock({ $0.contains(path) }),
               seconds(since: start) < RunLock.ownLockWait {
                usleep(10_000)   // this process's own lock, let go of, still in a starting child's copy
                continue
            }
            close(fd)
            if reason == EWOULDBLOCK {
                throw TrainingError("\(dir) is in use by another run (\(holder ?? "holder unknown")); "
                                    + "wait for it to finish, stop it, or give another output directory")
            }
            throw TrainingError("\(path): cannot lock: \(String(cString: strerror(reason)))")
        }
        self.fd = fd
        RunLock.held.withLock { _ = $0.insert(path) }
        let stamp = ISO8601DateFormatter().string(from: Date())
        let text = "\(me)\(purpose) since \(stamp)\n"
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

    deinit {
        RunLock.held.withLock { _ = $0.remove(path) }
        close(fd)
    }
}
