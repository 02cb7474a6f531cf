// Running another program from a benchmark (nanochat beside bench, mpirun, python3 for the
// reference side): its standard output and error together, a failure an error holding them.
import ArgumentParser
import Foundation

/// Runs `program` (a path, or a name looked up on PATH) with `arguments` and the extra
/// `environment`; returns what it printed.
func runChild(_ program: String, _ arguments: [String], environment: [String: String] = [:]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program.hasPrefix("/") ? program : "/usr/bin/env")
    process.arguments = program.hasPrefix("/") ? arguments : [program] + arguments
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe()
    process.standardOutput = out
    process.standardError = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let log = String(decoding: data, as: UTF8.self)
    guard process.terminationStatus == 0 else {
        throw ValidationError("\(program) \(arguments.joined(separator: " ")) failed:\n\(log.suffix(2000))")
    }
    return log
}
