// The OpenBLAS core start-up chooses, on the CPUs where it matters: a Xeon newer than the
// library (which then falls back to its generic SSE3 core), an AVX2 EPYC, and the edges
// (the user's own OPENBLAS_CORETYPE, a library built for one CPU, an OS without AVX-512
// state). The facts are those cpuid reports on each CPU.
import Foundation
import Testing
import Tensor

@Suite struct HostCPUTests {
    /// Emerald/Sapphire Rapids, Cooper Lake: AVX-512 with BF16.
    static var xeonBF16: CPUFacts {
        var f = CPUFacts(vendor: .intel)
        f.avx = true; f.avx2 = true; f.fma = true
        f.avx512f = true; f.avx512bw = true; f.avx512vl = true; f.avx512dq = true; f.avx512cd = true
        f.avx512bf16 = true
        f.osYMM = true; f.osZMM = true
        return f
    }

    /// Skylake-SP / Cascade Lake: AVX-512 without BF16.
    static var xeonAVX512: CPUFacts {
        var f = xeonBF16
        f.avx512bf16 = false
        return f
    }

    /// EPYC Zen 2/3: AVX2 and FMA.
    static var epycAVX2: CPUFacts {
        var f = CPUFacts(vendor: .amd)
        f.avx = true; f.avx2 = true; f.fma = true; f.osYMM = true
        return f
    }

    static func choose(_ facts: CPUFacts, _ core: String, userSet: Bool = false,
                       available: BLASCores = .all) -> BLASCoreChoice {
        BLASCoreChoice(facts: facts, corename: core, userSet: userSet, available: available)
    }

    @Test func aXeonTheLibraryFellBackOnIsSwitchedToItsBestCore() {
        let c = Self.choose(Self.xeonBF16, "Prescott")
        #expect(c.action == .switchTo("Cooperlake"))
        #expect(c.cpuTier == .avx512bf16)
        #expect(c.coreTier == .sse)
        // A library without Cooperlake's kernels: the best AVX-512 core it has.
        #expect(Self.choose(Self.xeonBF16, "Prescott", available: [.sandybridge, .haswell, .skylakeX]).action == .switchTo("SkylakeX"))
        #expect(Self.choose(Self.xeonAVX512, "Prescott").action == .switchTo("SkylakeX"))
        // Without AVX-512 in the library at all, still the best it has: AVX2.
        #expect(Self.choose(Self.xeonAVX512, "Nehalem", available: [.sandybridge, .haswell, .zen]).action == .switchTo("Haswell"))
    }

    @Test func anAVX512CoreServesAnyAVX512CPU() {
        // Cooperlake adds BF16 products only; SkylakeX's sgemm is the same.
        #expect(Self.choose(Self.xeonBF16, "SkylakeX").action == .keep)
        #expect(Self.choose(Self.xeonBF16, "Cooperlake").action == .keep)
        #expect(Self.choose(Self.xeonBF16, "cooperlake").action == .keep)   // names compare case-insensitively
        #expect(Self.choose(Self.xeonAVX512, "SkylakeX").action == .keep)
        // But an AVX2 core on an AVX-512 CPU is below it.
        #expect(Self.choose(Self.xeonAVX512, "Haswell").action == .switchTo("SkylakeX"))
    }

    @Test func theUsersCoretypeIsRespectedWithAWarning() {
        let c = Self.choose(Self.xeonBF16, "Prescott", userSet: true)
        #expect(c.action == .warnUser(better: "Cooperlake"))
        #expect(Self.choose(Self.epycAVX2, "Sandybridge", userSet: true).action == .warnUser(better: "Zen"))
        // A user's core that fits the CPU: nothing to say.
        #expect(Self.choose(Self.epycAVX2, "Haswell", userSet: true).action == .keep)
    }

    @Test func anAVX2CPUGetsZenOnAMDAndHaswellOnIntel() {
        #expect(Self.choose(Self.epycAVX2, "Zen").action == .keep)
        #expect(Self.choose(Self.epycAVX2, "Haswell").action == .keep)
        #expect(Self.choose(Self.epycAVX2, "Prescott").action == .switchTo("Zen"))
        #expect(Self.choose(Self.epycAVX2, "Prescott", available: [.sandybridge, .haswell]).action == .switchTo("Haswell"))
        var haswell = Self.epycAVX2
        haswell.vendor = .intel
        #expect(Self.choose(haswell, "Core2").action == .switchTo("Haswell"))
    }

    @Test func whatTheOSDoesNotSaveDoesNotCount() {
        // AVX-512 in cpuid, but the OS leaves the ZMM state out of XCR0: the CPU runs AVX2.
        var f = Self.xeonAVX512
        f.osZMM = false
        #expect(f.tier == .avx2)
        #expect(Self.choose(f, "Prescott").action == .switchTo("Haswell"))
        #expect(Self.choose(f, "Haswell").action == .keep)
        f.osYMM = false
        #expect(f.tier == .sse)
        #expect(Self.choose(f, "Prescott").action == .keep)
    }

    /// A CPU starts with no feature; each tier needs every one of its features (and the OS's
    /// saving of its registers): any one taken away drops the tier to the one below.
    @Test func eachTierNeedsEveryOneOfItsFeatures() {
        let none = CPUFacts(vendor: .other)
        #expect(none.tier == .sse)
        let every: [WritableKeyPath<CPUFacts, Bool>] = [\.avx, \.avx2, \.fma, \.avx512f, \.avx512bw, \.avx512vl, \.avx512dq,
                                                        \.avx512cd, \.avx512bf16, \.amxTile, \.amxBF16, \.osAMX, \.osYMM, \.osZMM]
        #expect(every.allSatisfy { !none[keyPath: $0] })
        let avx512: [WritableKeyPath<CPUFacts, Bool>] = [\.avx512f, \.avx512bw, \.avx512vl, \.avx512dq, \.avx512cd, \.osZMM]
        for feature in avx512 {
            var f = Self.xeonBF16
            f[keyPath: feature] = false
            #expect(f.tier == .avx2, "\(feature)")
        }
        #expect(Self.xeonBF16.tier == .avx512bf16 && Self.xeonAVX512.tier == .avx512)
        let avx2: [WritableKeyPath<CPUFacts, Bool>] = [\.avx2, \.fma]
        for feature in avx2 {
            var f = Self.epycAVX2
            f[keyPath: feature] = false
            #expect(f.tier == .avx, "\(feature)")
        }
        var f = Self.epycAVX2
        f.osYMM = false
        #expect(f.tier == .sse)
        f = Self.epycAVX2
        f.avx = false; f.avx2 = false
        #expect(f.tier == .sse)
    }

    /// The copy of the project's own C kernels: AVX-512 needs F, BW, VL, DQ, the OS's ZMM
    /// state and the AVX2 copy's features (not CD); AVX2 needs AVX2, FMA and the OS's YMM
    /// state; any one taken away drops to the copy below.
    @Test func theOwnKernelsCopyNeedsEveryOneOfItsFeatures() {
        #expect(CPUFacts(vendor: .other).ownKernels == .sse)
        #expect(Self.xeonBF16.ownKernels == .avx512 && Self.xeonAVX512.ownKernels == .avx512 && Self.epycAVX2.ownKernels == .avx2)
        var noCD = Self.xeonAVX512
        noCD.avx512cd = false
        #expect(noCD.ownKernels == .avx512 && noCD.tier == .avx2)
        for feature: WritableKeyPath<CPUFacts, Bool> in [\.avx512f, \.avx512bw, \.avx512vl, \.avx512dq, \.osZMM] {
            var f = Self.xeonAVX512
            f[keyPath: feature] = false
            #expect(f.ownKernels == .avx2, "\(feature)")
        }
        for feature: WritableKeyPath<CPUFacts, Bool> in [\.avx2, \.fma, \.osYMM] {
            var f = Self.epycAVX2
            f[keyPath: feature] = false
            #expect(f.ownKernels == .sse, "AVX2 copy without \(feature)")
            var g = Self.xeonAVX512
            g[keyPath: feature] = false
            #expect(g.ownKernels == .sse, "AVX-512 copy without \(feature)")
        }
    }

    /// The vector width start-up reports for the kernels is the one of the instruction set
    /// they were built for (each build compiles one branch of each: a CPU of each kind checks
    /// its own).
    @Test func theKernelsVectorWidthIsTheirInstructionSets() {
        let isa = HostCPU.kernelISA
        let bits = isa.hasPrefix("AVX-512") ? 512 : isa.hasPrefix("AVX") ? 256 : 128
        #expect(["AVX-512+BF16", "AVX-512", "AVX2+FMA", "AVX", "NEON", "SSE2", "scalar"].contains(isa), "\(isa)")
        #expect(HostCPU.kernelVectorBits == bits, "\(isa): \(HostCPU.kernelVectorBits) bits")
    }

    @Test func aLibraryBuiltForOneCPUCannotBeSwitched() {
        let c = Self.choose(Self.epycAVX2, "Prescott", available: [])
        #expect(c.action == .noBetterCore)
        #expect(c.coreTier == .sse && c.cpuTier == .avx2)
    }

    @Test func eachOpenBLASCoreHasTheTierOfItsKernels() {
        // Every x86-64 core OpenBLAS names, by the widest instructions its sgemm uses, any
        // case; the tier decides whether start-up switches.
        let tiers: [SIMDTier: [String]] = [
            .sse: ["Katmai", "Coppermine", "Northwood", "Banias", "Prescott", "Core2", "Penryn", "Dunnington",
                   "Nehalem", "Atom", "Athlon", "Opteron", "Opteron(SSE3)", "Barcelona", "Nano", "Bobcat"],
            .avx: ["Sandybridge", "Bulldozer", "Piledriver", "Steamroller", "Excavator"],
            .avx2: ["Haswell", "Zen"],
            .avx512: ["SkylakeX"],
            .avx512bf16: ["Cooperlake", "SapphireRapids"],
            .unknown: ["NEOVERSEN1", "", "Haswell2", "Zen5"],
        ]
        for (tier, cores) in tiers {
            for core in cores + cores.map({ $0.uppercased() }) {
                #expect(Self.choose(Self.xeonBF16, core).coreTier == tier, "\(core)")
            }
        }
    }

    @Test func coresThisTableDoesNotKnowAreLeftAlone() {
        #expect(Self.choose(Self.epycAVX2, "NEOVERSEN1").action == .keep)
        #expect(Self.choose(Self.epycAVX2, "").action == .keep)
        #expect(Self.choose(CPUFacts(vendor: .other), "Prescott").action == .keep)
    }

    @Test func startUpLeftNoSwitchUndone() {
        // Whatever this machine is, the core this process runs needs no further switch:
        // start-up made it, or it was not needed, or it cannot be made here, or the user chose
        // it (OPENBLAS_CORETYPE, as clusters often set), which start-up keeps.
        let live = BLASCoreChoice(facts: .host, corename: HostCPU.blasCore, userSet: HostCPU.blasCoreSetByUser, available: .thisLibrary)
        if case .switchTo(let core) = live.action {
            Issue.record("OpenBLAS runs \(HostCPU.blasCore) on a \(live.cpuTier) CPU; start-up should have switched to \(core)")
        }
        #expect(HostCPU.summary.contains("core \(HostCPU.blasCore)"))
    }

    /// Each feature cpuid gives is the flag Linux lists in /proc/cpuinfo, for the registers the
    /// OS saves (a kernel that does not save a feature's registers clears its flags).
    @Test func cpuidReadsWhatLinuxLists() throws {
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8).split(separator: "\n")
        func field(_ name: String) throws -> Substring {
            let line = try #require(info.first { $0.hasPrefix(name) }, "/proc/cpuinfo has no \(name) line")
            return try #require(line.split(separator: ":", maxSplits: 1).last)
        }
        let flags = Set(try field("flags").split(separator: " ").map(String.init))
        let f = CPUFacts.host
        let vendor = try field("vendor_id").trimmingCharacters(in: .whitespaces)
        #expect(f.vendor == (vendor == "GenuineIntel" ? .intel : vendor == "AuthenticAMD" ? .amd : .other))
        #expect(f.osYMM == flags.contains("avx"))
        if f.osYMM {
            #expect(f.avx && f.fma == flags.contains("fma") && f.avx2 == flags.contains("avx2"))
        }
        #expect(f.osZMM == flags.contains("avx512f"))
        if f.osZMM {
            #expect(f.avx512f && f.avx512bw == flags.contains("avx512bw") && f.avx512vl == flags.contains("avx512vl"))
            #expect(f.avx512dq == flags.contains("avx512dq") && f.avx512cd == flags.contains("avx512cd"))
            #expect(f.avx512bf16 == flags.contains("avx512_bf16"))
        }
        if f.osAMX {
            #expect(f.amxTile == flags.contains("amx_tile") && f.amxBF16 == flags.contains("amx_bf16"))
        }
    }

    @Test func theReExecutedProcessReadsTheMarkerStartUpLeft() {
        let plain = HostCPU.readStartupMarker("corrected:Prescott")
        #expect(plain?.correctedFrom == "Prescott" && plain?.simulated == false)
        let simulated = HostCPU.readStartupMarker("corrected:Prescott:simulated")
        #expect(simulated?.correctedFrom == "Prescott" && simulated?.simulated == true)
        // Only ":simulated" marks a simulated fallback; the core ends at the first colon.
        let other = HostCPU.readStartupMarker("corrected:Nehalem:other")
        #expect(other?.correctedFrom == "Nehalem" && other?.simulated == false)
        #expect(HostCPU.readStartupMarker("corrected:")?.correctedFrom == "")
        // The state keeps 31 bytes of the name and its end: a longer one is cut there.
        let long = String(repeating: "x", count: 31)
        #expect(HostCPU.readStartupMarker("corrected:" + long)?.correctedFrom == long)
        #expect(HostCPU.readStartupMarker("corrected:" + long + "y")?.correctedFrom == long)
        #expect(HostCPU.readStartupMarker("corrected:" + long + "yz:simulated")?.simulated == true)
        // Anything else is not a re-execution's marker.
        for marker in ["simulate", "", "Corrected:Prescott", "corrected", "xcorrected:Prescott"] {
            #expect(HostCPU.readStartupMarker(marker) == nil, "\(marker)")
        }
    }

    /// The top clock behind the expected GEMM peak: cpufreq's maximum (kHz) where there is
    /// one, else the highest `cpu MHz` of /proc/cpuinfo (what a virtual machine has).
    @Test func theClockIsCpufreqsMaximumElseTheHighestCpuinfoLine() {
        let info = "processor\t: 0\ncpu MHz\t\t: 2445.406\nflags\t: fpu\n\nprocessor\t: 1\ncpu MHz\t\t: 3700.000\nbogomips\t: 4890.81\n"
        #expect(HostCPU.clockGHz(cpufreqMaxKHz: "3900000\n", cpuinfo: info) == 3.9)
        #expect(HostCPU.clockGHz(cpufreqMaxKHz: nil, cpuinfo: info) == 3.7)
        // A cpufreq text of no positive number is passed over for cpuinfo.
        for unread in ["0\n", "", "-5", "fast"] {
            #expect(HostCPU.clockGHz(cpufreqMaxKHz: unread, cpuinfo: info) == 3.7, "\(unread.debugDescription)")
        }
        #expect(HostCPU.clockGHz(cpufreqMaxKHz: "0", cpuinfo: "processor\t: 0\n") == nil)
        #expect(HostCPU.clockGHz(cpufreqMaxKHz: nil, cpuinfo: nil) == nil)
    }

    /// The sgemm peak's warning: given below half of what the running core should reach at the
    /// top clock (flops a cycle × GHz × threads), not given at or above half.
    @Test func aPeakUnderHalfTheExpectedIsWarnedOf() throws {
        guard let expected = HostCPU.expectedPeak(threads: 2) else {
            // A core or clock this host does not make known: no expectation, no warning.
            #expect(HostCPU.peakWarning(measured: 0.001, threads: 2) == nil)
            return
        }
        let one = try #require(HostCPU.expectedPeak(threads: 1))
        #expect(abs(expected - 2 * one) < 1e-9 * expected, "the expected peak grows with the threads")
        let low = 0.49 * expected
        let warning = try #require(HostCPU.peakWarning(measured: low, threads: 2))
        #expect(warning.contains(String(format: "measured %.1f GFLOPS", low)) && warning.contains(String(format: "of the %.0f", expected))
                && warning.contains("on 2 threads"), "\(warning)")
        #expect(HostCPU.peakWarning(measured: 0.51 * expected, threads: 2) == nil)
        #expect(HostCPU.peakWarning(measured: 0.49 * one, threads: 1) != nil && HostCPU.peakWarning(measured: 0.51 * one, threads: 1) == nil)
    }
}
