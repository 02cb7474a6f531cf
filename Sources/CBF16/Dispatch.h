// One C body compiled for several instruction sets, the widest the CPU runs chosen once.
//
// NC_MULTIVERSION(name, (params), (args)) expects `name##_body`, an always-inline function,
// and defines `name`: a static function calling the body's AVX-512, AVX2+FMA or baseline
// copy. The bodies here are integer work, conversions, or sums of exact products, so each
// copy gives the same bits.
#ifndef NANOCHAT_CBF16_DISPATCH_H
#define NANOCHAT_CBF16_DISPATCH_H

#include "CHost.h"

/// nanochat_kernel_level's levels.
enum { NC_ISA_BASE = 0, NC_ISA_AVX2 = 1, NC_ISA_AVX512 = 2 };

/// The widest of the copies this CPU runs, read once.
int nc_isa_level(void);

#if defined(__x86_64__)
#define NC_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi2")))
#define NC_TARGET_AVX2 __attribute__((target("avx2,fma,bmi2")))
#define NC_MULTIVERSION(name, params, args)                                   \
    static NC_TARGET_AVX512 void name##_avx512 params { name##_body args; }   \
    static NC_TARGET_AVX2 void name##_avx2 params { name##_body args; }       \
    static void name##_base params { name##_body args; }                      \
    static void name params {                                                 \
        switch (nc_isa_level()) {                                             \
        case NC_ISA_AVX512: name##_avx512 args; break;                        \
        case NC_ISA_AVX2: name##_avx2 args; break;                            \
        default: name##_base args; break;                                     \
        }                                                                     \
    }
#else
#define NC_MULTIVERSION(name, params, args) \
    static void name params { name##_body args; }
#endif

#endif
