// How matrix products multiply: in fp32, or with bf16 operands and fp32 accumulation
// (mixed precision as autocast does it), and which bf16 kernel this CPU runs.
//
// Only the products change. Their operands are rounded to bf16 as they are packed, the sums
// are fp32, and the outputs are fp32 tensors: weights, gradients, optimiser state, norms,
// softmax, the selective scan and the loss never leave fp32. The kernel is chosen once, at
// first use, from what cpuid and the OS allow (AMX, then AVX512_BF16, then the portable
// path), so one binary runs the best kernel of the machine it lands on.
import CBF16
import Foundation
import Synchronization

/// The precision of matrix products.
public enum MatmulPrecision: String, Sendable, CaseIterable, CustomStringConvertible {
    /// fp32 operands through sgemm.
    case float32
    /// bf16 operands (rounded to nearest even), fp32 accumulation and fp32 outputs.
    case bfloat16

    public var description: String { rawValue }
}

/// The kernels that multiply bf16 operands.
public enum BF16Kernel: String, Sendable, CaseIterable, CustomStringConvertible {
    /// AMX tiles (tdpbf16ps): Intel Xeon 4th generation (Sapphire Rapids) and later.
    case amx
    /// vdpbf16ps on 512-bit vectors: AMD Zen 4 and 5, Intel Cooper Lake and later.
    case avx512bf16
    /// Elsewhere: the operands rounded to bf16 and multiplied by fp32 sgemm, which gives
    /// the same sums of the same exact products at fp32 speed (bf16 buys no speed there).
    case rounded
    /// The packed layouts multiplied by plain C: slow, for any CPU; the tests check the
    /// packing with it, and decoding with bf16 weights uses its few-rows loop.
    case portable

    public var description: String {
        switch self {
        case .amx: "AMX"
        case .avx512bf16: "AVX512_BF16"
        case .rounded: "rounded operands, fp32 sgemm"
        case .portable: "portable C"
        }
    }

    /// The C kernel over packed operands (CBF16.h), where there is one.
    var packedKernel: Int32 {
        switch self {
        case .amx: Int32(NC_BF16_AMX)
        case .avx512bf16: Int32(NC_BF16_AVX512)
        case .rounded, .portable: Int32(NC_BF16_PORTABLE)
        }
    }

    /// Whether products go through the packed layouts (rather than rounded fp32 + sgemm).
    public var packs: Bool { self != .rounded }

    /// Whether this CPU (and OS) can run the kernel. For AMX this asks Linux for the tile
    /// state on first use; `refusal` says why not when it was refused.
    public var available: Bool { availability.ok }

    /// Why the kernel cannot run here, or nil.
    public var refusal: String? { availability.ok ? nil : availability.why }

    private var availability: (ok: Bool, why: String) {
        switch self {
        case .rounded, .portable: return (true, "")
        case .avx512bf16:
            return nc_bf16_kernel_available(packedKernel, nil)
                ? (true, "") : (false, "this CPU has no AVX512_BF16 (vdpbf16ps) with AVX-512 enabled by the OS")
        case .amx:
            var error: Int32 = 0
            if nc_bf16_kernel_available(packedKernel, &error) { return (true, "") }
            if error != 0 {
                return (false, "the kernel refused AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM: "
                        + "\(String(cString: strerror(error)))); Linux 5.16 or later grants it")
            }
            return (false, "this CPU has no AMX-BF16 tiles enabled by the OS")
        }
    }

    /// The fastest kernel this machine runs. AMX first. vdpbf16ps does twice the work of an
    /// fp32 multiply-add per instruction, but Intel cores issue it on one port where they
    /// issue fp32 multiply-adds on two: on a Xeon it measured 0.7-0.9x of fp32 sgemm (`bench
    /// kernels`, docs/tensor.md), so there the rounded operands through sgemm are faster. AMD's
    /// Zen 4 and 5 run it at the fp32 multiply-add rate, twice the work.
    public static let best: BF16Kernel = {
        if BF16Kernel.amx.available { return .amx }
        if BF16Kernel.avx512bf16.available && CPUFacts.host.vendor == .amd { return .avx512bf16 }
        return .rounded
    }()

    /// The kernel products use unless told otherwise: `NANOCHAT_BF16_KERNEL` (amx,
    /// avx512bf16, rounded or portable) where set to one this machine runs, to compare
    /// kernels on one CPU; else the best.
    public static let chosen: BF16Kernel = {
        guard let name = ProcessInfo.processInfo.environment["NANOCHAT_BF16_KERNEL"], !name.isEmpty else { return best }
        guard let kernel = BF16Kernel(rawValue: name), kernel.available else {
            let reason = BF16Kernel(rawValue: name)?.refusal ?? "not a kernel (amx, avx512bf16, rounded, portable)"
            FileHandle.standardError.write(Data("warning: NANOCHAT_BF16_KERNEL=\(name) ignored: \(reason)\n".utf8))
            return best
        }
        return kernel
    }()

    /// Whether bf16 products are faster than fp32 here: the CPU multiplies bf16 natively.
    public static var native: Bool { best == .amx || best == .avx512bf16 }
}

/// The precision and bf16 kernel matrix products use: process-wide, or for one task.
public enum Precision {
    private static let global = Mutex<(MatmulPrecision, BF16Kernel?)>((.float32, nil))

    @TaskLocal static var local: MatmulPrecision? = nil
    @TaskLocal static var localKernel: BF16Kernel? = nil

    /// The precision products use here: the task's (`with`), else the process's (`set`),
    /// fp32 unless changed.
    public static var matmul: MatmulPrecision { local ?? global.withLock { $0.0 } }

    /// The bf16 kernel products use here: the task's, else the process's, else the chosen one.
    public static var kernel: BF16Kernel { localKernel ?? global.withLock { $0.1 } ?? BF16Kernel.chosen }

    /// The precision that trains fastest and correctly on this CPU: bf16 where it multiplies
    /// bf16 natively (AMX, AVX512_BF16), fp32 elsewhere.
    public static var fastest: MatmulPrecision { BF16Kernel.native ? .bfloat16 : .float32 }

    /// Sets the process-wide precision, and optionally the bf16 kernel (it must be available).
    public static func set(_ precision: MatmulPrecision, kernel: BF16Kernel? = nil) {
        if let kernel { precondition(kernel.available, "bf16 kernel \(kernel) is not available: \(kernel.refusal ?? "")") }
        global.withLock { $0 = (precision, kernel ?? $0.1) }
    }

    /// Runs `body` with products in `precision` (and `kernel`, if given) on this task alone.
    public static func with<R>(_ precision: MatmulPrecision, kernel: BF16Kernel? = nil, _ body: () throws -> R) rethrows -> R {
        if let kernel { precondition(kernel.available, "bf16 kernel \(kernel) is not available: \(kernel.refusal ?? "")") }
        return try $local.withValue(precision) {
            try $localKernel.withValue(kernel ?? localKernel, operation: body)
        }
    }

    /// One line for the head of a run's output: `matmul: bf16 AMX`, `matmul: fp32 sgemm`.
    public static var summary: String {
        switch matmul {
        case .float32: "matmul: fp32 sgemm"
        case .bfloat16: "matmul: bf16 \(kernel)"
        }
    }
}
