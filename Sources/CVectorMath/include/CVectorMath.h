// Lane-wise square roots and a cache prefetch hint for the Swift kernels.
//
// Swift lowers Float.squareRoot() to the C library's sqrtf (which may set errno on a
// negative input), and SIMD16's squareRoot() to sixteen of those: LLVM cannot vectorise
// them. clang's elementwise builtin compiles to the vector instruction (vsqrtps: two per
// SIMD16 with AVX2, one with AVX-512; fsqrt on Arm), correctly rounded like sqrtf, so the
// bits are the same. Swift imports these vector types as SIMD16<Float> and SIMD16<Double>.
#ifndef NANOCHAT_CVECTORMATH_H
#define NANOCHAT_CVECTORMATH_H

typedef float nanochat_float16 __attribute__((ext_vector_type(16)));
typedef double nanochat_double16 __attribute__((ext_vector_type(16)));

static inline __attribute__((always_inline)) nanochat_float16 nanochat_sqrt_f16(nanochat_float16 x) {
    return __builtin_elementwise_sqrt(x);
}

static inline __attribute__((always_inline)) nanochat_double16 nanochat_sqrt_d16(nanochat_double16 x) {
    return __builtin_elementwise_sqrt(x);
}

// A hint to bring the cache line at p into all cache levels for reading (prefetcht0 on
// x86-64, prfm pldl1keep on Arm). The scan walks time with a stride of a whole (Di) row,
// 6 KiB at d12: more than a 4 KiB page, past which the hardware prefetchers stop following.
static inline __attribute__((always_inline)) void nanochat_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

#endif
