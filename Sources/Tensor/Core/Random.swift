// Seeded random numbers: the same seed gives the same draws on every machine.
import Foundation

/// xoshiro256** seeded through SplitMix64 (Vigna's recommended seeding). Deterministic and
/// fast; not for cryptography.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// Standard normal by Box–Muller (one draw per call; the pair's second value is dropped
    /// so the stream position is simple to reason about).
    public mutating func nextNormal() -> Double {
        let u1 = 1 - nextUnit()   // (0, 1]
        let u2 = nextUnit()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }
}

extension Tensor {
    /// Draws from N(mean, std²), in row-major order from `generator`.
    public static func randomNormal(
        _ shape: [Int], mean: Double = 0, std: Double = 1, dtype: DType = .float32,
        generator: inout SeededGenerator
    ) -> Tensor {
        let values = (0..<shape.reduce(1, *)).map { _ in mean + std * generator.nextNormal() }
        return Tensor(shape: shape, scalars: values, dtype: dtype)
    }

    /// Draws from U(low, high), in row-major order from `generator`.
    public static func randomUniform(
        _ shape: [Int], low: Double, high: Double, dtype: DType = .float32,
        generator: inout SeededGenerator
    ) -> Tensor {
        let values = (0..<shape.reduce(1, *)).map { _ in low + (high - low) * generator.nextUnit() }
        return Tensor(shape: shape, scalars: values, dtype: dtype)
    }
}
