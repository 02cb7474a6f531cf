// The machine's sgemm peak: what model FLOPs utilisation (MFU) is quoted against, by `train`
// and by the benchmark.
import Dispatch
import Synchronization

/// The best rate, in GFLOPS, of `repeats` square sgemm products of side `size` through
/// `gemm`, cut over our workers (`Parallel.threadCount` of them) as every product of a train
/// step is: the peak that model FLOPs utilisation (MFU) is quoted against. Best, not median:
/// on a shared machine the best run is the closest to the hardware. OpenBLAS's own thread
/// count is never changed here: it is process-wide, and a product run elsewhere meanwhile
/// (another model, a test) would be split by OpenBLAS's threads and change its bits.
public func measureGemmPeak(size: Int = 2048, repeats: Int = 5) -> Double {
    let a = [Float](repeating: 0.5, count: size * size), b = a
    var c = [Float](repeating: 0, count: size * size)
    var best = Double.infinity
    a.withUnsafeBufferPointer { ap in
        b.withUnsafeBufferPointer { bp in
            c.withUnsafeMutableBufferPointer { cp in
                for _ in 0...repeats {   // the first product warms up and counts too
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    gemm(m: size, n: size, k: size, a: ap.baseAddress!, b: bp.baseAddress!, c: cp.baseAddress!)
                    best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
                }
            }
        }
    }
    return 2 * Double(size * size * size) / best / 1e9
}

/// `measureGemmPeak()` measured once per process and thread count (a sweep starts dozens of
/// runs; the machine's peak does not change between them).
public func gemmPeak(threads: Int) -> Double {
    if let known = measuredPeaks.withLock({ $0[threads] }) { return known }
    let peak = measureGemmPeak()
    measuredPeaks.withLock { $0[threads] = peak }
    return peak
}

private let measuredPeaks = Mutex<[Int: Double]>([:])
