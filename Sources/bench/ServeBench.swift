// `bench serve`: `nanochat serve` under load, from outside. Starts the server beside this
// executable on a checkpoint, then streams completions over plain sockets: one client alone,
// then N clients at once (all connected together), each asking for exactly --max-tokens
// (`ignore_eos`, as vLLM's benchmarks do, so early ends do not shrink the batch). Reports
// tokens/s of each, their ratio (what continuous batching buys), time to first token
// (p50/p99) and the mean batch the engine stepped (from /health).
import ArgumentParser
import Foundation

struct ServeBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "The server under load: one streaming client against N at once (tokens/s, time to first token)."
    )

    @Option(help: "Checkpoint to serve.") var checkpoint = "runs/shakespeare_d4"
    @Option(help: "Concurrent clients.") var clients = 16
    @Option(help: "Tokens each request asks for.") var maxTokens = 64
    @Option(help: "Rounds of each measurement (the median is quoted).") var rounds = 3
    @Option(help: "Port for the server.") var port = 8471
    @Option(help: "Server worker threads (default: all cores).") var threads = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard clients >= 1, maxTokens >= 1, rounds >= 1 else { throw ValidationError("--clients, --max-tokens and --rounds must be ≥ 1") }
    }

    func run() throws {
        let nanochat = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("nanochat").path
        guard FileManager.default.isExecutableFile(atPath: nanochat) else {
            throw ValidationError("\(nanochat) not found; build it: swift build -c release --product nanochat")
        }
        let server = Process()
        server.executableURL = URL(fileURLWithPath: nanochat)
        server.arguments = ["serve", "--checkpoint", checkpoint, "--port", "\(port)", "--slots", "\(clients)",
                            "--threads", "\(threads)", "--max-tokens", "\(max(maxTokens, 16))"]
        let log = Pipe()
        server.standardOutput = log
        server.standardError = log
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }
        var ready = false
        for _ in 0..<600 where !ready {
            if (try? HTTPProbe.get(port: port, path: "/health")) != nil { ready = true } else { usleep(100_000) }
            if !server.isRunning { break }
        }
        guard ready else {
            server.terminate()
            throw ValidationError("the server did not start:\n" + String(decoding: log.fileHandleForReading.availableData, as: UTF8.self))
        }
        print("bench serve: \(checkpoint), \(clients) clients × \(maxTokens) tokens, server threads \(threads), \(rounds) round(s)")
        print(hostLine())
        let body = "{\"prompt\": \"ROMEO:\", \"max_tokens\": \(maxTokens), \"temperature\": 0.8, \"ignore_eos\": true, \"stream\": true, "
            + "\"stream_options\": {\"include_usage\": true}}"
        _ = try HTTPProbe.stream(port: port, body: body)   // warm-up

        var single: [Double] = [], many: [Double] = [], firsts: [Double] = [], batches: [Double] = []
        for _ in 0..<rounds {
            let one = try HTTPProbe.stream(port: port, body: body)
            single.append(Double(one.tokens) / one.seconds)
        }
        for _ in 0..<rounds {
            let before = try HTTPProbe.health(port: port)
            let start = Date()
            let results = try runConcurrently(clients) { _ in try HTTPProbe.stream(port: port, body: body) }
            let wall = Date().timeIntervalSince(start)
            let after = try HTTPProbe.health(port: port)
            many.append(Double(results.reduce(0) { $0 + $1.tokens }) / wall)
            firsts += results.map(\.firstToken)
            let steps = after.steps - before.steps, made = after.generated - before.generated
            if steps > 0 { batches.append(Double(made) / Double(steps)) }
        }
        let one = median(single), all = median(many)
        print(String(format: "one client:   %8.1f tokens/s (median of %d)", one, rounds))
        print(String(format: "%2d clients:   %8.1f tokens/s together = %.2fx one client", clients, all, all / one))
        print(String(format: "time to first token with %d clients: p50 %.0f ms, p99 %.0f ms (%d requests)",
                     clients, 1000 * percentile(firsts, 0.5), 1000 * percentile(firsts, 0.99), firsts.count))
        print(String(format: "mean batch per engine step: %.1f requests", median(batches)))
    }

    func median(_ xs: [Double]) -> Double { percentile(xs, 0.5) }

    func percentile(_ xs: [Double], _ p: Double) -> Double {
        guard !xs.isEmpty else { return .nan }
        let s = xs.sorted()
        return s[min(s.count - 1, Int((p * Double(s.count - 1)).rounded()))]
    }

    func hostLine() -> String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":").last?
            .trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        return "CPU: \(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores"
    }
}

/// Runs `body` on `count` threads started together; the results in order, or the first error.
func runConcurrently(_ count: Int, _ body: @escaping @Sendable (Int) throws -> HTTPProbe.Streamed) throws -> [HTTPProbe.Streamed] {
    let box = ResultBox(count), group = DispatchGroup(), gate = DispatchSemaphore(value: 0)
    for i in 0..<count {
        group.enter()
        let t = Thread {
            gate.wait()
            let r = Result { try body(i) }
            box.lock.withLock { box.results[i] = r }
            group.leave()
        }
        t.start()
    }
    for _ in 0..<count { gate.signal() }
    group.wait()
    return try box.results.map { try $0!.get() }
}

private final class ResultBox: @unchecked Sendable {
    var results: [Result<HTTPProbe.Streamed, any Error>?]
    let lock = NSLock()
    init(_ n: Int) { results = Array(repeating: nil, count: n) }
}

/// A minimal HTTP/1.1 client over a socket, enough to time a streamed reply.
enum HTTPProbe {
    struct Streamed: Sendable { var firstToken: Double, seconds: Double, tokens: Int }

    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ValidationError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { close(fd); throw ValidationError("connect to port \(port): \(String(cString: strerror(errno)))") }
        return fd
    }

    /// Sends the request and calls `onBytes` with what arrives until the server closes.
    static func exchange(port: Int, request: String, onBytes: ([UInt8]) -> Void) throws {
        let fd = try connect(port: port)
        defer { close(fd) }
        let bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw ValidationError("send: \(String(cString: strerror(errno)))") }
            sent += n
        }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            onBytes(Array(buffer[..<n]))
        }
    }

    static func get(port: Int, path: String) throws -> String {
        var all: [UInt8] = []
        try exchange(port: port, request: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n") { all += $0 }
        let text = String(decoding: all, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200"), let split = text.range(of: "\r\n\r\n") else {
            throw ValidationError("GET \(path): \(text.prefix(200))")
        }
        return String(text[split.upperBound...])
    }

    static func health(port: Int) throws -> (steps: Int, generated: Int) {
        let text = try get(port: port, path: "/health")
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let steps = object["steps"] as? Int, let generated = object["generated_tokens"] as? Int else {
            throw ValidationError("/health answered \(text.prefix(200))")
        }
        return (steps, generated)
    }

    /// POSTs a streaming completion; times its first piece of text and the whole, and reads
    /// the token count from the usage chunk.
    static func stream(port: Int, body: String) throws -> Streamed {
        let request = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        let start = Date()
        var first: Double? = nil
        var all: [UInt8] = []
        let marker = Array("\"text\":\"".utf8)
        try exchange(port: port, request: request) { bytes in
            all += bytes
            if first == nil, let at = all.firstRange(of: marker), at.upperBound < all.count, all[at.upperBound] != UInt8(ascii: "\"") {
                first = Date().timeIntervalSince(start)
            }
        }
        let seconds = Date().timeIntervalSince(start)
        let text = String(decoding: all, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200"), let usage = text.range(of: "\"completion_tokens\":"),
              let tokens = Int(text[usage.upperBound...].prefix(while: \.isNumber)) else {
            throw ValidationError("the streamed completion failed: \(text.prefix(300))")
        }
        return Streamed(firstToken: first ?? seconds, seconds: seconds, tokens: tokens)
    }
}
