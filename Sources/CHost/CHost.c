// CPU facts and the OpenBLAS core correction at start-up (see CHost.h).
#define _GNU_SOURCE
#include "CHost.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

// OpenBLAS extensions (declared in its cblas.h; repeated so this file needs no BLAS header).
char *openblas_get_corename(void);
char *openblas_get_config(void);
void openblas_set_num_threads(int num_threads);

// Set by start-up in the environment of the process it re-executes (and inherited by its
// children): "simulate" while forcing the simulated fallback, "corrected:<core>" once the
// core OpenBLAS first chose (<core>) was replaced. Its presence marks OPENBLAS_CORETYPE as
// ours, not the user's, and stops any further re-execution.
static const char *const marker_variable = "NANOCHAT_BLAS_STARTUP";
static const char *const simulate_variable = "NANOCHAT_SIMULATE_BLAS_FALLBACK";

nanochat_cpu_facts nanochat_cpu_facts_read(void) {
    nanochat_cpu_facts f;
    memset(&f, 0, sizeof f);
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
    unsigned max_leaf = a;
    char vendor[13];
    memcpy(vendor, &b, 4); memcpy(vendor + 4, &d, 4); memcpy(vendor + 8, &c, 4);
    vendor[12] = 0;
    f.vendor = strcmp(vendor, "GenuineIntel") == 0 ? NANOCHAT_VENDOR_INTEL
             : strcmp(vendor, "AuthenticAMD") == 0 ? NANOCHAT_VENDOR_AMD : NANOCHAT_VENDOR_OTHER;

    __get_cpuid(1, &a, &b, &c, &d);
    f.avx = (c >> 28) & 1;
    f.fma = (c >> 12) & 1;
    bool osxsave = (c >> 27) & 1;
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        f.os_ymm = (lo & 0x6) == 0x6;       // XMM and YMM state
        f.os_zmm = (lo & 0xe6) == 0xe6;     // and opmask, ZMM0-15 upper halves, ZMM16-31
        f.os_amx = (lo & 0x60000) == 0x60000;  // XTILECFG and XTILEDATA
    }
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        unsigned subleaves = a;
        f.avx2 = (b >> 5) & 1;
        f.avx512f = (b >> 16) & 1;
        f.avx512dq = (b >> 17) & 1;
        f.avx512cd = (b >> 28) & 1;
        f.avx512bw = (b >> 30) & 1;
        f.avx512vl = (b >> 31) & 1;
        f.amx_bf16 = (d >> 22) & 1;
        f.amx_tile = (d >> 24) & 1;
        if (subleaves >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            f.avx512bf16 = (a >> 5) & 1;
        }
    }
#endif
    return f;
}

int nanochat_cpu_tier(nanochat_cpu_facts f) {
    if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512cd && f.os_zmm)
        return f.avx512bf16 ? NANOCHAT_TIER_AVX512_BF16 : NANOCHAT_TIER_AVX512;
    if (f.avx2 && f.fma && f.os_ymm) return NANOCHAT_TIER_AVX2;
    if (f.avx && f.os_ymm) return NANOCHAT_TIER_AVX;
    return NANOCHAT_TIER_SSE;
}

int nanochat_kernel_level(nanochat_cpu_facts f) {
    if (!(f.avx2 && f.fma && f.os_ymm)) return 0;
    return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.os_zmm ? 2 : 1;
}

// OpenBLAS's x86-64 core names (its `corename` table, as openblas_get_corename() spells
// them), by the instructions their sgemm kernels use.
static const struct { const char *name; int tier; } core_tiers[] = {
    {"Katmai", 0}, {"Coppermine", 0}, {"Northwood", 0}, {"Banias", 0}, {"Prescott", 0},
    {"Core2", 0}, {"Penryn", 0}, {"Dunnington", 0}, {"Nehalem", 0}, {"Atom", 0},
    {"Athlon", 0}, {"Opteron", 0}, {"Opteron(SSE3)", 0}, {"Barcelona", 0}, {"Nano", 0},
    {"Bobcat", 0},
    {"Sandybridge", 1}, {"Bulldozer", 1}, {"Piledriver", 1}, {"Steamroller", 1},
    {"Excavator", 1},
    {"Haswell", 2}, {"Zen", 2},
    {"SkylakeX", 3},
    {"Cooperlake", 4}, {"SapphireRapids", 4},
};

int nanochat_core_tier(const char *corename) {
    if (corename == NULL) return NANOCHAT_TIER_UNKNOWN;
    for (size_t i = 0; i < sizeof core_tiers / sizeof core_tiers[0]; i++)
        if (strcasecmp(core_tiers[i].name, corename) == 0) return core_tiers[i].tier;
    return NANOCHAT_TIER_UNKNOWN;
}

// The cores start-up may switch to: name (as OPENBLAS_CORETYPE takes it), bit, tier and
// the exported kernel table of a DYNAMIC_ARCH build that has it.
static const struct { const char *name; unsigned bit; int tier; const char *symbol; } switchable[] = {
    {"Cooperlake", NANOCHAT_CORE_COOPERLAKE, 4, "gotoblas_COOPERLAKE"},
    {"SkylakeX", NANOCHAT_CORE_SKYLAKEX, 3, "gotoblas_SKYLAKEX"},
    {"Zen", NANOCHAT_CORE_ZEN, 2, "gotoblas_ZEN"},
    {"Haswell", NANOCHAT_CORE_HASWELL, 2, "gotoblas_HASWELL"},
    {"Sandybridge", NANOCHAT_CORE_SANDYBRIDGE, 1, "gotoblas_SANDYBRIDGE"},
};
enum { switchable_count = sizeof switchable / sizeof switchable[0] };

unsigned nanochat_blas_available_cores(void) {
    unsigned cores = 0;
    for (int i = 0; i < switchable_count; i++)
        if (dlsym(RTLD_DEFAULT, switchable[i].symbol) != NULL) cores |= switchable[i].bit;
    return cores;
}

nanochat_blas_choice nanochat_blas_choose(nanochat_cpu_facts facts, const char *corename,
                                          bool user_set, unsigned available_cores) {
    nanochat_blas_choice choice = {
        .action = NANOCHAT_BLAS_KEEP, .core = NULL,
        .cpu_tier = nanochat_cpu_tier(facts), .core_tier = nanochat_core_tier(corename),
    };
    // Cooperlake's and SapphireRapids' sgemm is SkylakeX's (they add BF16 products): any
    // AVX-512 core serves an AVX-512 CPU's sgemm in full.
    int needed = choice.cpu_tier < NANOCHAT_TIER_AVX512 ? choice.cpu_tier : NANOCHAT_TIER_AVX512;
    if (choice.core_tier == NANOCHAT_TIER_UNKNOWN || choice.core_tier >= needed)
        return choice;
    // The best core the CPU runs and the library has: the highest tier first; within the
    // AVX2 tier, Zen's blocking for AMD CPUs and Haswell's for the others.
    for (int i = 0; i < switchable_count; i++) {
        if (!(available_cores & switchable[i].bit)) continue;
        if (switchable[i].tier > choice.cpu_tier || switchable[i].tier <= choice.core_tier) continue;
        if (switchable[i].bit == NANOCHAT_CORE_ZEN && facts.vendor != NANOCHAT_VENDOR_AMD) continue;
        if (switchable[i].bit == NANOCHAT_CORE_HASWELL && facts.vendor == NANOCHAT_VENDOR_AMD
            && (available_cores & NANOCHAT_CORE_ZEN)) continue;
        choice.core = switchable[i].name;
        choice.action = user_set ? NANOCHAT_BLAS_WARN_USER : NANOCHAT_BLAS_SWITCH;
        return choice;
    }
    choice.action = NANOCHAT_BLAS_NO_BETTER;
    return choice;
}

static nanochat_blas_state state;

static void copy_name(char *to, size_t size, const char *from) {
    snprintf(to, size, "%s", from ? from : "");
}

bool nanochat_blas_read_marker(const char *marker, char *from, size_t size, bool *simulated) {
    if (marker == NULL || strncmp(marker, "corrected:", 10) != 0 || size == 0) return false;
    const char *core = marker + 10;
    const char *end = strchr(core, ':');
    size_t length = end ? (size_t)(end - core) : strlen(core);
    if (length >= size) length = size - 1;
    memcpy(from, core, length);
    from[length] = 0;
    *simulated = end != NULL && strcmp(end, ":simulated") == 0;
    return true;
}

static pthread_once_t state_once = PTHREAD_ONCE_INIT;

// What the library loaded with, as this process found it (no correction).
static void read_state(void) {
    state.facts = nanochat_cpu_facts_read();
    state.corename = openblas_get_corename();
    state.config = openblas_get_config();
    const char *marker = getenv(marker_variable);
    const char *coretype = getenv("OPENBLAS_CORETYPE");
    if (nanochat_blas_read_marker(marker, state.corrected_from, sizeof state.corrected_from,
                                  &state.simulated)) {
        // This process is a re-execution: what was replaced is recorded.
        state.choice = nanochat_blas_choose(state.facts, state.corename, false,
                                            nanochat_blas_available_cores());
        return;
    }
    bool simulating = marker != NULL && strcmp(marker, "simulate") == 0;
    state.user_set = coretype != NULL && coretype[0] != 0 && !simulating;
    if (state.user_set) copy_name(state.user_coretype, sizeof state.user_coretype, coretype);
    state.choice = nanochat_blas_choose(state.facts, state.corename, state.user_set,
                                        nanochat_blas_available_cores());
}

const nanochat_blas_state *nanochat_blas_startup(void) {
    pthread_once(&state_once, read_state);
    return &state;
}

// Replaces this process with itself, the environment changed by the caller. Returns only
// when exec failed (the process then goes on with the core it has).
static void reexecute(char **argv) {
#if defined(__linux__)
    fflush(NULL);
    execv("/proc/self/exe", argv);
    state.reexec_errno = errno;
#else
    (void)argv;
    state.reexec_errno = ENOSYS;
#endif
}

void nanochat_blas_correct(char **argv) {
    const nanochat_blas_state *found = nanochat_blas_startup();
    const char *marker = getenv(marker_variable);
    const char *simulate = getenv(simulate_variable);
    const char *coretype = getenv("OPENBLAS_CORETYPE");
    if (marker == NULL && simulate != NULL && simulate[0] != 0 && strcmp(simulate, "0") != 0) {
        // Make the library really choose its generic core, as it does for a CPU it does not
        // know; the next start-up must then see the fallback and correct it.
        setenv("OPENBLAS_CORETYPE", "Prescott", 1);
        setenv(marker_variable, "simulate", 1);
        reexecute(argv);
        if (coretype) setenv("OPENBLAS_CORETYPE", coretype, 1); else unsetenv("OPENBLAS_CORETYPE");
        unsetenv(marker_variable);
        return;
    }
    if (found->choice.action != NANOCHAT_BLAS_SWITCH) return;
    bool simulating = marker != NULL && strcmp(marker, "simulate") == 0;
    char value[64];
    snprintf(value, sizeof value, "corrected:%s%s", found->corename ? found->corename : "?",
             simulating ? ":simulated" : "");
    setenv("OPENBLAS_CORETYPE", found->choice.core, 1);
    setenv(marker_variable, value, 1);
    reexecute(argv);
    // exec failed: leave the environment as the user gave it.
    if (coretype) setenv("OPENBLAS_CORETYPE", coretype, 1); else unsetenv("OPENBLAS_CORETYPE");
    unsetenv(marker_variable);
}

// OpenBLAS runs on one thread in every process that links these libraries, from the start:
// `gemm` cuts products over our own workers, and a product OpenBLAS split over its threads
// could give other bits than the same product cut at row multiples (see GemmRowSplit). Set
// as the library loads (after OpenBLAS's own initialisation: a library initialises after
// those it links), before any Swift code, it holds whichever code path calls OpenBLAS first.
// This is all that happens before `main`.
__attribute__((constructor))
static void nanochat_blas_single_thread(void) {
    openblas_set_num_threads(1);
}

int nanochat_build_vector_bits(void) {
#if defined(__AVX512F__)
    return 512;
#elif defined(__AVX__)
    return 256;
#else
    return 128;
#endif
}

const char *nanochat_build_isa(void) {
#if defined(__AVX512F__) && defined(__AVX512BF16__)
    return "AVX-512+BF16";
#elif defined(__AVX512F__)
    return "AVX-512";
#elif defined(__AVX2__) && defined(__FMA__)
    return "AVX2+FMA";
#elif defined(__AVX__)
    return "AVX";
#elif defined(__aarch64__)
    return "NEON";
#elif defined(__x86_64__)
    return "SSE2";
#else
    return "scalar";
#endif
}
