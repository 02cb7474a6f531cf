// Wall-clock timing: a warm-up run, then the median and spread of repeated runs.
import Foundation

/// Seconds taken by each of `runs` calls of `body`, after `warmup` untimed calls.
func timeRuns(warmup: Int = 1, runs: Int, _ body: () -> Void) -> Samples {
    for _ in 0..<warmup { body() }
    var times: [Double] = []
    for _ in 0..<runs {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
    }
    return Samples(seconds: times)
}

/// Repeated timings of one measurement.
struct Samples: Codable {
    var seconds: [Double]

    var median: Double {
        let s = seconds.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
    var min: Double { seconds.min() ?? 0 }
    var max: Double { seconds.max() ?? 0 }
    /// (max - min) / median: how noisy the runs were.
    var spread: Double { median > 0 ? (max - min) / median : 0 }
}

/// Formats a number with a fixed count of decimals.
func fmt(_ x: Double, _ decimals: Int = 1) -> String { String(format: "%.\(decimals)f", x) }

/// Times several bodies in alternation (A B A B ...), so slow phases of a noisy machine hit
/// each alike, with an untimed pause of `pauses[i]` seconds after body i (none if omitted).
/// Returns one Samples per body.
func timeInterleaved(warmup: Int = 1, runs: Int, pauses: [Double] = [], _ bodies: [() -> Void]) -> [Samples] {
    func pause(_ i: Int) { if i < pauses.count && pauses[i] > 0 { usleep(useconds_t(pauses[i] * 1e6)) } }
    for (i, body) in bodies.enumerated() { for _ in 0..<warmup { body(); pause(i) } }
    var times = [[Double]](repeating: [], count: bodies.count)
    for _ in 0..<runs {
        for (i, body) in bodies.enumerated() {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times[i].append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
            pause(i)
        }
    }
    return times.map { Samples(seconds: $0) }
}
