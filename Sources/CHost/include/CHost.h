// What this host's CPU supports, and the OpenBLAS core that uses it.
//
// OpenBLAS picks its kernels ("core") when the library loads, by recognising the CPU. A CPU
// newer than the library is not recognised and gets the generic `Prescott` (SSE3) kernels:
// 4-5x slower products on an AVX-512 Xeon, with nothing said. The executables call
// `nanochat_blas_correct` first thing in `main`: it compares the core OpenBLAS chose with what
// cpuid says the CPU can run and, when the library fell back below that and the user has not
// set OPENBLAS_CORETYPE, re-executes the process with OPENBLAS_CORETYPE naming the best core
// this OpenBLAS has (the library reads the variable only as it loads). A program that links
// the libraries without calling it keeps the core it got, and is warned. Swift reads the
// outcome through `nanochat_blas_startup()` and prints it. Before `main`, loading this library
// only sets OpenBLAS to one thread.
#ifndef NANOCHAT_CHOST_H
#define NANOCHAT_CHOST_H

#include <stdbool.h>
#include <stddef.h>

/// The CPU's SIMD facts, from cpuid and xgetbv (what the OS saves on a context switch).
typedef struct {
    int vendor;   // NANOCHAT_VENDOR_*
    bool avx, avx2, fma;
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512cd, avx512bf16;
    bool os_ymm;  // the OS saves the 256-bit registers (XCR0 bits 1-2)
    bool os_zmm;  // the OS saves the 512-bit registers and mask registers (XCR0 bits 5-7)
    bool amx_tile, amx_bf16;  // AMX tiles and their bf16 products (tdpbf16ps)
    bool os_amx;  // the OS saves the tile configuration and data (XCR0 bits 17-18)
} nanochat_cpu_facts;

enum { NANOCHAT_VENDOR_OTHER = 0, NANOCHAT_VENDOR_INTEL = 1, NANOCHAT_VENDOR_AMD = 2 };

/// Kernel tiers, from the instructions a core's sgemm uses: 0 SSE, 1 AVX, 2 AVX2+FMA,
/// 3 AVX-512, 4 AVX-512 with BF16. -1: a core name this table does not know.
enum {
    NANOCHAT_TIER_UNKNOWN = -1, NANOCHAT_TIER_SSE = 0, NANOCHAT_TIER_AVX = 1,
    NANOCHAT_TIER_AVX2 = 2, NANOCHAT_TIER_AVX512 = 3, NANOCHAT_TIER_AVX512_BF16 = 4,
};

/// The x86 cores OpenBLAS may be switched to, as a bit set of what a library build has.
enum {
    NANOCHAT_CORE_SANDYBRIDGE = 1 << 0,
    NANOCHAT_CORE_HASWELL = 1 << 1,
    NANOCHAT_CORE_ZEN = 1 << 2,
    NANOCHAT_CORE_SKYLAKEX = 1 << 3,
    NANOCHAT_CORE_COOPERLAKE = 1 << 4,
};

/// What start-up does about the core.
enum {
    NANOCHAT_BLAS_KEEP = 0,          // the core matches the CPU (or is one we do not know)
    NANOCHAT_BLAS_SWITCH = 1,        // re-execute with OPENBLAS_CORETYPE = core
    NANOCHAT_BLAS_WARN_USER = 2,     // the user's OPENBLAS_CORETYPE is below the CPU; `core` is better
    NANOCHAT_BLAS_NO_BETTER = 3,     // below the CPU, but this OpenBLAS has no better core
};

typedef struct {
    int action;          // NANOCHAT_BLAS_*
    const char *core;    // the core to use (SWITCH, WARN_USER), else NULL; a static string
    int cpu_tier;        // the best tier the CPU runs
    int core_tier;       // the tier of the core OpenBLAS chose
} nanochat_blas_choice;

/// This CPU's facts (all false off x86-64).
nanochat_cpu_facts nanochat_cpu_facts_read(void);

/// The best tier the CPU with these facts runs.
int nanochat_cpu_tier(nanochat_cpu_facts facts);

/// Which copy of this project's own multi-versioned C kernels (CBF16's conversions, packing
/// and sums) the CPU with these facts runs: 0 the baseline x86-64 copy, 1 AVX2+FMA (with the
/// OS saving YMM), 2 AVX-512 F/BW/VL/DQ (with the OS saving ZMM and masks, and level 1).
int nanochat_kernel_level(nanochat_cpu_facts facts);

/// The tier of an OpenBLAS core name (case-insensitive), or NANOCHAT_TIER_UNKNOWN.
int nanochat_core_tier(const char *corename);

/// The cores this process's OpenBLAS was built with (NANOCHAT_CORE_* bits): none for a
/// library built for one CPU, which cannot be switched.
unsigned nanochat_blas_available_cores(void);

/// The decision, as a pure function of its inputs (what the tests drive).
nanochat_blas_choice nanochat_blas_choose(nanochat_cpu_facts facts, const char *corename,
                                          bool user_set, unsigned available_cores);

/// What start-up found and did, for this process.
typedef struct {
    const char *corename;          // openblas_get_corename() in this process
    const char *config;            // openblas_get_config(): version and build options
    char corrected_from[32];       // the core OpenBLAS first chose, when start-up switched it
    bool simulated;                // the fallback was forced by NANOCHAT_SIMULATE_BLAS_FALLBACK
    bool user_set;                 // OPENBLAS_CORETYPE came from the user
    char user_coretype[32];        // its value
    nanochat_blas_choice choice;   // the decision in this process (KEEP after a switch)
    int reexec_errno;              // non-zero when the re-execution failed (the process went on)
    nanochat_cpu_facts facts;
} nanochat_blas_state;

/// Reads the marker a re-executed process finds in its environment ("corrected:CORE", or
/// "corrected:CORE:simulated" when the fallback was forced): true when `marker` is one, with
/// CORE in `from` (cut to size - 1 bytes, always ended by a 0) and whether it was simulated;
/// false for anything else (NULL, "simulate", another value), leaving both untouched.
bool nanochat_blas_read_marker(const char *marker, char *from, size_t size, bool *simulated);

/// What this process found (read once, on the first call).
const nanochat_blas_state *nanochat_blas_startup(void);

/// Corrects a fallback core by re-executing the process (argv: main's arguments, ending in
/// NULL). Returns when nothing needs correcting, or when the exec failed (recorded in the
/// state's reexec_errno; the environment is left as it was). Call it first thing in `main`,
/// before any thread starts.
void nanochat_blas_correct(char **argv);

/// The vector width, in bits, the kernels were compiled for: 512 (AVX-512), 256 (AVX2+FMA
/// or AVX), 128 (SSE, NEON).
int nanochat_build_vector_bits(void);

/// The ISA name of that build target ("AVX-512", "AVX2+FMA", ...).
const char *nanochat_build_isa(void);

/// A hint inside a spin-wait loop: the core slows the loop down and, with hyperthreads, gives
/// its sibling the execution units (x86 `pause`, Arm `yield`).
static inline void nanochat_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
