// Running a model's HumanEval program: in a child Python process of its own, never in ours,
// with limits on its time, memory, file sizes and processes, in an empty temporary
// directory, with a bare environment, and without network where Linux lets an unprivileged
// process make its own network namespace (`unshare --net`). Before the program runs, a
// prologue takes away the functions that start processes, signal them or delete and rename
// files (as nanochat's execution guard does). This contains the mistakes of generated code;
// it is not a boundary against code written to escape it.
import Foundation

public struct PythonSandbox: Sendable {
    /// The interpreter (resolved past wrappers such as pyenv's shims).
    public let python: String
    /// `unshare` when network namespaces are available, else nil.
    public let unshare: String?
    /// Wall-clock seconds a program may run (nanochat's execute_code gives 5).
    public var timeout: Double = 5
    /// Address space a program may take.
    public var memoryBytes = 1 << 30

    /// The sandbox on this machine, or an error saying what is missing.
    public static func find(python name: String = "python3") throws -> PythonSandbox {
        guard let found = run(["/usr/bin/env", name, "-c", "import sys; print(sys.executable)"], environment: nil, timeout: 20),
              found.status == 0, case let path = found.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
              !path.isEmpty, FileManager.default.isExecutableFile(atPath: path) else {
            throw ChatTaskError("HumanEval runs each program in a child Python process; no working \(name) was found on PATH (install python3, or leave HumanEval out)")
        }
        var unshare: String? = nil
        for candidate in ["/usr/bin/unshare", "/bin/unshare"] where FileManager.default.isExecutableFile(atPath: candidate) {
            if let probe = run([candidate, "--user", "--map-root-user", "--net", "true"], environment: [:], timeout: 10), probe.status == 0 {
                unshare = candidate
            }
            break
        }
        return PythonSandbox(python: path, unshare: unshare)
    }

    /// What a program did: passed (exited 0 in time), or why not.
    public struct Outcome: Sendable, Equatable {
        public let passed: Bool
        /// "timed out", or the last line the program wrote to stderr (its exception).
        public let failure: String?
    }

    /// Runs one program.
    public func run(_ program: String) -> Outcome {
        let fm = FileManager.default
        let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("nanochat-humaneval-\(UUID().uuidString)")
        guard (try? fm.createDirectory(atPath: dir, withIntermediateDirectories: true)) != nil else {
            return Outcome(passed: false, failure: "cannot make a temporary directory")
        }
        defer { try? fm.removeItem(atPath: dir) }
        let file = (dir as NSString).appendingPathComponent("program.py")
        let guardFile = (dir as NSString).appendingPathComponent("guard.py")
        guard fm.createFile(atPath: file, contents: Data(program.utf8)), fm.createFile(atPath: guardFile, contents: Data(Self.prologue.utf8)) else {
            return Outcome(passed: false, failure: "cannot write the program")
        }
        // Limits set by the shell before it becomes Python: memory (KiB), CPU seconds, file
        // size (512-byte blocks; 1024-byte in dash, which /bin/sh is on Debian).
        let cpu = Int(timeout.rounded(.up)) + 1
        let limits = "ulimit -v \(memoryBytes / 1024) && ulimit -t \(cpu) && ulimit -f 20480"
        var command = ["/bin/sh", "-c", "\(limits) && exec \"$0\" -I -B guard.py program.py", python]
        if let unshare { command = [unshare, "--user", "--map-root-user", "--net"] + command }
        guard let result = Self.run(command, environment: ["PATH": "/usr/bin:/bin", "HOME": dir, "LANG": "C.UTF-8"],
                                    directory: dir, timeout: timeout) else {
            return Outcome(passed: false, failure: "could not start \(python)")
        }
        if result.timedOut { return Outcome(passed: false, failure: "timed out") }
        if result.status == 0 { return Outcome(passed: true, failure: nil) }
        let last = result.stderr.split(separator: "\n").last.map(String.init) ?? "exit status \(result.status)"
        return Outcome(passed: false, failure: last)
    }

    /// Runs the program file named on the command line after removing what could harm the
    /// machine; any exception fails it.
    static let prologue = """
    builtins, os, shutil, subprocess, sys = (__import__(m) for m in ["builtins", "os", "shutil", "subprocess", "sys"])
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ["kill", "killpg", "system", "putenv", "remove", "removedirs", "rmdir", "unlink", "rename", "renames",
                 "replace", "truncate", "fchdir", "setuid", "fork", "forkpty", "execv", "execve", "execvp", "spawnv",
                 "popen", "chmod", "chown", "lchown", "chroot", "link", "symlink"]:
        if hasattr(os, name):
            setattr(os, name, None)
    shutil.rmtree = shutil.move = shutil.chown = None
    subprocess.Popen = None
    builtins.exit = builtins.quit = None
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        source = f.read()
    exec(compile(source, path, "exec"), {"__name__": "__main__"})

    """

    struct Finished { let status: Int32; let stdout: String; let stderr: String; let timedOut: Bool }

    /// Runs a command to its end (or kills it after `timeout` seconds), collecting its output.
    static func run(_ command: [String], environment: [String: String]?, directory: String? = nil, timeout: Double) -> Finished? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        do { try process.run() } catch { return nil }
        // Read both pipes while it runs, so a chatty program cannot fill one and stall.
        let group = DispatchGroup()
        nonisolated(unsafe) var stdout = Data(), stderr = Data()
        DispatchQueue.global().async(group: group) { stdout = out.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { stderr = err.fileHandleForReading.readDataToEndOfFile() }
        var timedOut = false
        if done.wait(timeout: .now() + timeout) == .timedOut {
            timedOut = true
            kill(process.processIdentifier, SIGKILL)
            done.wait()
        }
        group.wait()
        return Finished(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                        stderr: String(decoding: stderr, as: UTF8.self), timedOut: timedOut)
    }
}
