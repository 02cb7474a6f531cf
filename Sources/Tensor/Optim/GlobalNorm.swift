// The whole-buffer kernel of gradient clipping: Σ x² over a buffer. (The clipping factor
// itself is applied by the optimisers as they read the gradients.)

/// Σ x[i]² over x[0..<n], as a Double. Summed in fixed chunks of 65536 (each a SIMD dot
/// product in Float), the chunk sums then added in order: the same bits with any number of
/// threads. Non-finite if any element is.
public func squaredNorm(_ x: UnsafePointer<Float>, count n: Int) -> Double {
    let chunk = 1 << 16, chunks = (n + chunk - 1) / chunk
    guard chunks > 0 else { return 0 }
    let partial = UnsafeMutablePointer<Double>.allocate(capacity: chunks)
    defer { partial.deallocate() }
    Parallel.forEach(chunks) { c in
        let lo = c * chunk
        partial[c] = Double(vectorDot(x + lo, x + lo, Swift.min(chunk, n - lo)))
    }
    var total = 0.0
    for c in 0..<chunks { total += partial[c] }
    return total
}
