// What the CPU runs, which OpenBLAS core serves the products, and what start-up did about a
// core below the CPU. The detection and the switch are C (CHost.h), called first thing in the
// executables' `main` (`correctBLASCore`): OpenBLAS has loaded by then, so a switch re-executes
// the process.
import CHost
import Foundation

/// SIMD facts of a CPU, as cpuid and the OS report them.
public struct CPUFacts: Sendable, Equatable {
    public enum Vendor: Sendable { case intel, amd, other }
    public var vendor: Vendor
    public var avx = false, avx2 = false, fma = false
    public var avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512cd = false
    public var avx512bf16 = false
    /// AMX tiles with bf16 products, and the OS saving their state.
    public var amxTile = false, amxBF16 = false, osAMX = false
    /// The OS saves the 256-bit (YMM) and the 512-bit (ZMM and mask) registers.
    public var osYMM = false, osZMM = false

    public init(vendor: Vendor) { self.vendor = vendor }

    /// This machine's CPU.
    public static var host: CPUFacts { CPUFacts(nanochat_cpu_facts_read()) }

    init(_ f: nanochat_cpu_facts) {
        vendor = f.vendor == Int32(NANOCHAT_VENDOR_INTEL) ? .intel : f.vendor == Int32(NANOCHAT_VENDOR_AMD) ? .amd : .other
        avx = f.avx; avx2 = f.avx2; fma = f.fma
        avx512f = f.avx512f; avx512bw = f.avx512bw; avx512vl = f.avx512vl
        avx512dq = f.avx512dq; avx512cd = f.avx512cd; avx512bf16 = f.avx512bf16
        osYMM = f.os_ymm; osZMM = f.os_zmm
        amxTile = f.amx_tile; amxBF16 = f.amx_bf16; osAMX = f.os_amx
    }

    var c: nanochat_cpu_facts {
        nanochat_cpu_facts(
            vendor: Int32(vendor == .intel ? NANOCHAT_VENDOR_INTEL : vendor == .amd ? NANOCHAT_VENDOR_AMD : NANOCHAT_VENDOR_OTHER),
            avx: avx, avx2: avx2, fma: fma, avx512f: avx512f, avx512bw: avx512bw, avx512vl: avx512vl,
            avx512dq: avx512dq, avx512cd: avx512cd, avx512bf16: avx512bf16, os_ymm: osYMM, os_zmm: osZMM,
            amx_tile: amxTile, amx_bf16: amxBF16, os_amx: osAMX)
    }

    /// The best kernel tier this CPU runs.
    public var tier: SIMDTier { SIMDTier(raw: nanochat_cpu_tier(c)) }

    /// The copy of this project's own multi-versioned C kernels (bf16 conversion, packing
    /// and sums) this CPU runs: .sse (the baseline x86-64 copy), .avx2 or .avx512. Unlike
    /// `tier`, AVX-512's copy needs no AVX-512 CD (it uses F, BW, VL and DQ).
    public var ownKernels: SIMDTier {
        switch nanochat_kernel_level(c) {
        case 2: .avx512
        case 1: .avx2
        default: .sse
        }
    }
}

/// Kernel tiers by the instructions an sgemm kernel uses.
public enum SIMDTier: Int, Sendable, Comparable, CustomStringConvertible {
    case unknown = -1, sse = 0, avx = 1, avx2 = 2, avx512 = 3, avx512bf16 = 4

    init(raw: Int32) { self = SIMDTier(rawValue: Int(raw)) ?? .unknown }

    public static func < (a: SIMDTier, b: SIMDTier) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .unknown: "unknown"
        case .sse: "SSE"
        case .avx: "AVX"
        case .avx2: "AVX2+FMA"
        case .avx512: "AVX-512"
        case .avx512bf16: "AVX-512+BF16"
        }
    }

    /// Single-precision FLOPs per cycle per core that a tier's sgemm can count on: one
    /// vector multiply-add (or a multiply and an add) per cycle, the least of the CPUs that
    /// have the tier (AMD's Zen 1 and 4 run 256- and 512-bit work on half-width units).
    var flopsPerCycle: Double? {
        switch self {
        case .unknown: nil
        case .sse: 8
        case .avx, .avx2: 16
        case .avx512, .avx512bf16: 32
        }
    }
}

/// The OpenBLAS cores start-up can switch to, as a set.
public struct BLASCores: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let sandybridge = BLASCores(rawValue: UInt32(NANOCHAT_CORE_SANDYBRIDGE))
    public static let haswell = BLASCores(rawValue: UInt32(NANOCHAT_CORE_HASWELL))
    public static let zen = BLASCores(rawValue: UInt32(NANOCHAT_CORE_ZEN))
    public static let skylakeX = BLASCores(rawValue: UInt32(NANOCHAT_CORE_SKYLAKEX))
    public static let cooperlake = BLASCores(rawValue: UInt32(NANOCHAT_CORE_COOPERLAKE))
    /// Those of Debian 12's DYNAMIC_ARCH OpenBLAS 0.3.21.
    public static let all: BLASCores = [.sandybridge, .haswell, .zen, .skylakeX, .cooperlake]
    /// Those of the OpenBLAS this process loaded (none for a library built for one CPU).
    public static var thisLibrary: BLASCores { BLASCores(rawValue: nanochat_blas_available_cores()) }
}

/// What start-up does about the OpenBLAS core: the pure decision, from the CPU's facts, the
/// core the library chose, whether the user set OPENBLAS_CORETYPE, and the cores it has.
public struct BLASCoreChoice: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// The core matches the CPU, or is one this table does not know.
        case keep
        /// Re-execute with OPENBLAS_CORETYPE = core.
        case switchTo(String)
        /// The user's OPENBLAS_CORETYPE is below the CPU; this core would serve it better.
        case warnUser(better: String)
        /// Below the CPU, and the library has no better core (built for one CPU).
        case noBetterCore
    }
    public let action: Action
    public let cpuTier: SIMDTier
    public let coreTier: SIMDTier

    public init(facts: CPUFacts, corename: String, userSet: Bool, available: BLASCores) {
        self.init(nanochat_blas_choose(facts.c, corename, userSet, available.rawValue))
    }

    init(_ c: nanochat_blas_choice) {
        let core = c.core.map { String(cString: $0) } ?? ""
        switch Int(c.action) {
        case Int(NANOCHAT_BLAS_SWITCH): action = .switchTo(core)
        case Int(NANOCHAT_BLAS_WARN_USER): action = .warnUser(better: core)
        case Int(NANOCHAT_BLAS_NO_BETTER): action = .noBetterCore
        default: action = .keep
        }
        cpuTier = SIMDTier(raw: c.cpu_tier)
        coreTier = SIMDTier(raw: c.core_tier)
    }
}

/// This process's CPU, OpenBLAS core and kernel build, as start-up left them.
public enum HostCPU {
    /// The OpenBLAS core serving the products (openblas_get_corename()).
    public static var blasCore: String { state.corename.map { String(cString: $0) } ?? "unknown" }

    /// The library's version and build ("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen ...").
    public static var blasConfig: String { state.config.map { String(cString: $0) } ?? "unknown OpenBLAS" }

    /// The vector width and ISA the Swift and C kernels were compiled for.
    public static var kernelVectorBits: Int { Int(nanochat_build_vector_bits()) }
    public static var kernelISA: String { String(cString: nanochat_build_isa()) }

    /// Switches OpenBLAS to the best core this CPU runs when the library fell back below it
    /// (a CPU newer than the library) and the user has not chosen one, by re-executing the
    /// process with OPENBLAS_CORETYPE set: the library reads it only as it loads. Call it first
    /// thing in `main`, before any thread starts; it returns when nothing needs switching (or
    /// when the exec failed, which `warnings` then says). The executables call it; a program
    /// that links the libraries may.
    public static func correctBLASCore() {
        nanochat_blas_correct(CommandLine.unsafeArgv)
    }

    /// Whether the user chose the core (OPENBLAS_CORETYPE set, not by start-up): then it is
    /// kept, and only warned about when it is below the CPU.
    public static var blasCoreSetByUser: Bool { state.user_set }

    /// The core OpenBLAS chose before start-up switched it, when it did.
    public static var correctedFrom: String? {
        let from = string(state.corrected_from)
        return from.isEmpty ? nil : from
    }

    /// What a re-executed process reads from the marker start-up left in its environment:
    /// the core OpenBLAS first chose (cut to the 31 bytes the state keeps) and whether the
    /// fallback was simulated; nil when `marker` is not one start-up writes after a switch.
    public static func readStartupMarker(_ marker: String) -> (correctedFrom: String, simulated: Bool)? {
        var from = [CChar](repeating: 0, count: MemoryLayout.size(ofValue: nanochat_blas_state().corrected_from))
        var simulated = false
        guard nanochat_blas_read_marker(marker, &from, from.count, &simulated) else { return nil }
        return (String(decoding: from.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), simulated)
    }

    /// One line for the head of a run's output: the CPU's tier, the kernels' build, the BLAS
    /// core (and what start-up did about it).
    public static var summary: String {
        let version = blasConfig.split(separator: " ").prefix(2).joined(separator: " ")
        var line = "cpu: \(CPUFacts(state.facts).tier); kernels: \(kernelISA), \(kernelVectorBits)-bit vectors; "
            + "blas: \(version) core \(blasCore)"
        if let from = correctedFrom {
            line += simulated
                ? " (switched from \(from), a fallback simulated by NANOCHAT_SIMULATE_BLAS_FALLBACK)"
                : " (switched from \(from), which OpenBLAS chose for a CPU it does not recognise)"
        } else if state.user_set {
            line += " (OPENBLAS_CORETYPE=\(userCoretype))"
        }
        return line
    }

    /// What the user should know about the core and the build: empty when all is well.
    public static var warnings: [String] {
        var out: [String] = []
        let choice = BLASCoreChoice(state.choice)
        let cpu = CPUFacts(state.facts).tier
        switch choice.action {
        case .keep, .switchTo:
            // After a switch, the new core must now match the CPU.
            if correctedFrom != nil, choice.coreTier < cpu, choice.coreTier != .unknown {
                out.append("OpenBLAS was switched from \(correctedFrom ?? "?") but runs core \(blasCore) "
                           + "(\(choice.coreTier) kernels) on a CPU that runs \(cpu): products may be several times slower.")
            }
        case .warnUser(let better):
            out.append("OPENBLAS_CORETYPE=\(userCoretype) gives OpenBLAS core \(blasCore) (\(choice.coreTier) kernels), "
                       + "below what this CPU runs (\(cpu)): products may be several times slower. "
                       + "Unset it to let nanochat choose, or set OPENBLAS_CORETYPE=\(better).")
        case .noBetterCore:
            out.append("OpenBLAS runs core \(blasCore) (\(choice.coreTier) kernels) on a CPU that runs \(cpu), and this "
                       + "OpenBLAS build has no better core to switch to: products may be several times slower. "
                       + "Install an OpenBLAS built with DYNAMIC_ARCH (Debian's libopenblas0-pthread is) or a newer one.")
        }
        if case .switchTo(let core) = choice.action {
            if state.reexec_errno != 0 {
                out.append("could not re-execute to switch OpenBLAS from \(blasCore) to \(core) "
                           + "(\(String(cString: strerror(state.reexec_errno)))): set OPENBLAS_CORETYPE=\(core) yourself.")
            } else {
                // A program that links the libraries and did not call correctBLASCore().
                out.append("OpenBLAS runs core \(blasCore) (\(choice.coreTier) kernels) on a CPU that runs \(cpu): "
                           + "products may be several times slower. Set OPENBLAS_CORETYPE=\(core), or call "
                           + "HostCPU.correctBLASCore() first thing in main.")
            }
        }
        let built = buildTier
        if built != .unknown, built < cpu {
            out.append("the kernels were built for \(kernelISA) (a build without the NativeCPU trait, or for another CPU?) "
                       + "on a CPU that runs \(cpu): rebuild here with the default traits for full speed.")
        }
        return out
    }

    /// A warning when a measured sgemm peak (GFLOPS, over `threads` workers) is under half of
    /// the least the BLAS core should reach at the CPU's top clock: another process on the
    /// cores, a throttled CPU, or a core that does not fit it.
    public static func peakWarning(measured: Double, threads: Int) -> String? {
        guard let expected = expectedPeak(threads: threads), measured < 0.5 * expected else { return nil }
        return String(format: "the sgemm peak measured %.1f GFLOPS, under half of the %.0f that core %@ should reach "
                      + "on %d threads at %.2f GHz: are other processes using the cores?",
                      measured, expected, blasCore, threads, clockGHz ?? 0)
    }

    /// The least sgemm GFLOPS the core should reach on `threads` cores at the top clock.
    public static func expectedPeak(threads: Int) -> Double? {
        guard let perCycle = SIMDTier(raw: nanochat_core_tier(state.corename)).flopsPerCycle,
              let ghz = clockGHz else { return nil }
        return perCycle * ghz * Double(threads)
    }

    /// The CPU's top clock: cpufreq's maximum where the kernel exposes it (bare metal), else
    /// the highest `cpu MHz` in /proc/cpuinfo (virtual machines report the nominal clock).
    static var clockGHz: Double? {
        clockGHz(cpufreqMaxKHz: try? String(contentsOfFile: "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", encoding: .utf8),
                 cpuinfo: try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))
    }

    /// The top clock in GHz from the texts of cpufreq's `cpuinfo_max_freq` (kHz) and of
    /// /proc/cpuinfo, either absent: the first when it holds a positive number, else the
    /// highest `cpu MHz` line of the second (read only then); nil when neither gives one.
    public static func clockGHz(cpufreqMaxKHz khz: String?, cpuinfo: @autoclosure () -> String?) -> Double? {
        if let khz, let value = Double(khz.trimmingCharacters(in: .whitespacesAndNewlines)), value > 0 {
            return value / 1e6
        }
        guard let info = cpuinfo() else { return nil }
        let mhz = info.split(separator: "\n").filter { $0.hasPrefix("cpu MHz") }
            .compactMap { $0.split(separator: ":").last.flatMap { Double($0.trimmingCharacters(in: .whitespaces)) } }
        return mhz.max().map { $0 / 1e3 }
    }

    private static var state: nanochat_blas_state { nanochat_blas_startup().pointee }
    private static var simulated: Bool { state.simulated }
    private static var userCoretype: String { string(state.user_coretype) }
    /// A C char array (imported as a tuple) up to its first NUL.
    private static func string<T>(_ chars: T) -> String {
        withUnsafeBytes(of: chars) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
    private static var buildTier: SIMDTier {
        switch kernelISA {
        case "AVX-512+BF16": .avx512bf16
        case "AVX-512": .avx512
        case "AVX2+FMA": .avx2
        case "AVX": .avx
        case "SSE2": .sse
        default: .unknown
        }
    }
}
