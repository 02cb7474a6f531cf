// The bf16 microkernels (AMX, AVX512_BF16, portable) over the packed layouts of CBF16.h,
// the block loop that drives them, the few-rows kernels for decoding, and the store.
//
// A microkernel adds into a 32x32 fp32 accumulator block the product of one 32-row panel
// of packed A and two 16-column panels of packed B over a chunk of K. Every output is a
// sum of exact products (bf16 x bf16 fits in fp32) accumulated in fp32; which rows or
// columns share a call never changes a value, so the threads' cut changes no bit.
#define _GNU_SOURCE
#include "CBF16.h"
#include "Dispatch.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#include <sys/syscall.h>
#endif

static inline __attribute__((always_inline)) float f32_of_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// MARK: availability

int nc_isa_level(void) {
    static _Atomic int level = -1;
    int l = atomic_load_explicit(&level, memory_order_relaxed);
    if (l >= 0) return l;
    l = nanochat_kernel_level(nanochat_cpu_facts_read());   // NC_ISA_* are its levels
    atomic_store_explicit(&level, l, memory_order_relaxed);
    return l;
}

// Linux hands out AMX tile state per process on request (arch_prctl, since 5.16): without
// it the first tile instruction kills the process with SIGILL.
enum { ARCH_GET_XCOMP_PERM = 0x1022, ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };

static int amx_permission(void) {
#if defined(__x86_64__) && defined(__linux__)
    static _Atomic int result = -1;   // -1: not asked yet; else 0 or an errno
    int r = atomic_load_explicit(&result, memory_order_acquire);
    if (r >= 0) return r;
    r = 0;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) r = errno ? errno : EPERM;
    if (r == 0) {
        unsigned long bits = 0;
        if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &bits) != 0 || !(bits & (1ul << XFEATURE_XTILEDATA)))
            r = EPERM;
    }
    atomic_store_explicit(&result, r, memory_order_release);
    return r;
#else
    return ENOSYS;
#endif
}

bool nc_bf16_kernel_available(int kernel, int *error) {
    if (error) *error = 0;
    nanochat_cpu_facts f = nanochat_cpu_facts_read();
    switch (kernel) {
    case NC_BF16_PORTABLE: return true;
    case NC_BF16_AVX512: return f.avx512bf16 && nc_isa_level() == NC_ISA_AVX512;
    case NC_BF16_AMX: {
        if (!(f.amx_tile && f.amx_bf16 && f.os_amx && nc_isa_level() == NC_ISA_AVX512)) return false;
        int e = amx_permission();
        if (error) *error = e;
        return e == 0;
    }
    default: return false;
    }
}

// MARK: microkernels

// Portable: the sums in the order the AVX512_BF16 kernel makes them, each pair of products
// added to the lane in turn. Plain C for any CPU; the tests run it everywhere.
static void kernel_portable(const uint16_t *a, const uint16_t *b0, const uint16_t *b1, int kbs, float *acc,
                            size_t ld, bool zero) {
    for (int r = 0; r < 32; r++) {
        for (int half = 0; half < 2; half++) {
            const uint32_t *b = (const uint32_t *)(half ? b1 : b0);
            float s[16];
            for (int j = 0; j < 16; j++) s[j] = zero ? 0.0f : acc[r * ld + half * 16 + j];
            for (int kb = 0; kb < kbs; kb++) {
                const uint16_t *arow = a + (size_t)kb * 1024 + r * 32;
                for (int pp = 0; pp < 16; pp++) {
                    const float a0 = f32_of_bits((uint32_t)arow[2 * pp] << 16);
                    const float a1 = f32_of_bits((uint32_t)arow[2 * pp + 1] << 16);
                    const uint32_t *w = b + ((size_t)kb * 16 + pp) * 16;
                    for (int j = 0; j < 16; j++) {
                        s[j] += a1 * f32_of_bits(w[j] & 0xffff0000u);
                        s[j] += a0 * f32_of_bits(w[j] << 16);
                    }
                }
            }
            for (int j = 0; j < 16; j++) acc[r * ld + half * 16 + j] = s[j];
        }
    }
}

#if defined(__x86_64__)
#define NC_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")))
#define NC_TARGET_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")))

// AVX512_BF16: the 32x32 block as four groups of 8 rows x 32 columns, 16 zmm accumulators;
// per row pair of B, two 64-byte loads of B, 8 broadcasts of A's pairs, 16 vdpbf16ps.
static NC_TARGET_BF16 void kernel_avx512(const uint16_t *a, const uint16_t *b0, const uint16_t *b1, int kbs,
                                         float *acc, size_t ld, bool zero) {
    for (int g = 0; g < 4; g++) {
        __m512 c0[8], c1[8];
        float *out = acc + (size_t)g * 8 * ld;
#pragma clang loop unroll(full)
        for (int r = 0; r < 8; r++) {
            c0[r] = zero ? _mm512_setzero_ps() : _mm512_loadu_ps(out + r * ld);
            c1[r] = zero ? _mm512_setzero_ps() : _mm512_loadu_ps(out + r * ld + 16);
        }
        for (int kb = 0; kb < kbs; kb++) {
            const uint16_t *ab = a + (size_t)kb * 1024 + g * 8 * 32;
            const uint16_t *p0 = b0 + (size_t)kb * 512, *p1 = b1 + (size_t)kb * 512;
            for (int pp = 0; pp < 16; pp++) {
                const __m512bh w0 = (__m512bh)_mm512_loadu_si512(p0 + pp * 32);
                const __m512bh w1 = (__m512bh)_mm512_loadu_si512(p1 + pp * 32);
#pragma clang loop unroll(full)
                for (int r = 0; r < 8; r++) {
                    int32_t pair;
                    memcpy(&pair, ab + r * 32 + pp * 2, 4);
                    const __m512bh x = (__m512bh)_mm512_set1_epi32(pair);
                    c0[r] = _mm512_dpbf16_ps(c0[r], x, w0);
                    c1[r] = _mm512_dpbf16_ps(c1[r], x, w1);
                }
            }
        }
#pragma clang loop unroll(full)
        for (int r = 0; r < 8; r++) {
            _mm512_storeu_ps(out + r * ld, c0[r]);
            _mm512_storeu_ps(out + r * ld + 16, c1[r]);
        }
    }
}

// AMX: tiles 0-3 hold the 32x32 accumulator (rows 0-15 / 16-31 by columns 0-15 / 16-31),
// 4-5 the two 16-row halves of A's 32x32 block, 6-7 the two B panels' 16 row pairs.
typedef struct {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} nc_tile_config;
// LDTILECFG reads exactly 64 bytes.
_Static_assert(sizeof(nc_tile_config) == 64, "the AMX tile configuration is 64 bytes");

static NC_TARGET_AMX void amx_configure(void) {
    nc_tile_config config;
    memset(&config, 0, sizeof config);
    config.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        config.rows[t] = 16;
        config.colsb[t] = 64;
    }
    _tile_loadconfig(&config);
}

static NC_TARGET_AMX void kernel_amx(const uint16_t *a, const uint16_t *b0, const uint16_t *b1, int kbs, float *acc,
                                     size_t ld, bool zero) {
    const size_t stride = ld * sizeof(float);
    if (zero) {
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    } else {
        _tile_loadd(0, acc, stride);
        _tile_loadd(1, acc + 16, stride);
        _tile_loadd(2, acc + 16 * ld, stride);
        _tile_loadd(3, acc + 16 * ld + 16, stride);
    }
    for (int kb = 0; kb < kbs; kb++) {
        _tile_loadd(4, a + (size_t)kb * 1024, 64);
        _tile_loadd(5, a + (size_t)kb * 1024 + 512, 64);
        _tile_loadd(6, b0 + (size_t)kb * 512, 64);
        _tile_loadd(7, b1 + (size_t)kb * 512, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, acc, stride);
    _tile_stored(1, acc + 16, stride);
    _tile_stored(2, acc + 16 * ld, stride);
    _tile_stored(3, acc + 16 * ld + 16, stride);
}

static NC_TARGET_AMX void amx_release(void) { _tile_release(); }
#endif

typedef void (*microkernel)(const uint16_t *, const uint16_t *, const uint16_t *, int, float *, size_t, bool);

void nc_bf16_block(int kernel, const uint16_t *pa, int a_panels, const uint16_t *pb, int b_pairs, int k32, int kc,
                   float *acc, size_t ld) {
    microkernel run = kernel_portable;
#if defined(__x86_64__)
    if (kernel == NC_BF16_AVX512) run = kernel_avx512;
    if (kernel == NC_BF16_AMX) {
        amx_configure();
        run = kernel_amx;
    }
#endif
    if (kc <= 0 || kc > k32) kc = k32;
    // Each chunk of K: every A panel's chunk (32 x kc, at most 32 KiB at kc = 512) stays in
    // L1 while the block's B panel pairs stream past it from L2.
    for (int k0 = 0; k0 < k32; k0 += kc) {
        const int kbs = (k32 - k0 < kc ? k32 - k0 : kc) / 32;
        for (int p = 0; p < a_panels; p++) {
            const uint16_t *a = pa + (size_t)p * 32 * k32 + (size_t)k0 * 32;
            for (int q = 0; q < b_pairs; q++) {
                const uint16_t *b0 = pb + (size_t)(2 * q) * 16 * k32 + (size_t)k0 * 16;
                run(a, b0, b0 + (size_t)16 * k32, kbs, acc + (size_t)p * 32 * ld + q * 32, ld, k0 == 0);
            }
        }
    }
#if defined(__x86_64__)
    if (kernel == NC_BF16_AMX) amx_release();
#endif
}

// MARK: few rows (decoding)

// Portable: up to 4 rows at a time against one 16-column panel, the B panel read as 32-bit
// words (low half: the even row of the pair, high half: the odd one). The products are
// exact, so with or without FMA the sums are the same.
static inline __attribute__((always_inline)) void rows_portable_body(const uint16_t *a, size_t lda, int r0, int r1,
                                                                       const uint16_t *pb, int q0, int q1, int k32,
                                                                       int n, float *out, size_t ldo) {
    for (int q = q0; q < q1; q++) {
        const uint32_t *panel = (const uint32_t *)(pb + (size_t)q * 16 * k32);
        const int cols = n - q * 16 < 16 ? n - q * 16 : 16;
        for (int r = r0; r < r1; r += 4) {
            const int rows = r1 - r < 4 ? r1 - r : 4;
            float s[4][16];
            memset(s, 0, sizeof s);
            for (int p = 0; p < k32 / 2; p++) {
                const uint32_t *w = panel + (size_t)p * 16;
                float lo[16], hi[16];
                for (int j = 0; j < 16; j++) {
                    lo[j] = f32_of_bits(w[j] << 16);
                    hi[j] = f32_of_bits(w[j] & 0xffff0000u);
                }
                for (int i = 0; i < rows; i++) {
                    const uint16_t *ar = a + (size_t)(r + i) * lda + 2 * p;
                    const float a0 = f32_of_bits((uint32_t)ar[0] << 16), a1 = f32_of_bits((uint32_t)ar[1] << 16);
                    for (int j = 0; j < 16; j++) {
                        s[i][j] += a1 * hi[j];
                        s[i][j] += a0 * lo[j];
                    }
                }
            }
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++) out[(size_t)(r + i) * ldo + q * 16 + j] = s[i][j];
        }
    }
}
NC_MULTIVERSION(rows_portable,
                (const uint16_t *a, size_t lda, int r0, int r1, const uint16_t *pb, int q0, int q1, int k32, int n,
                 float *out, size_t ldo),
                (a, lda, r0, r1, pb, q0, q1, k32, n, out, ldo))

#if defined(__x86_64__)
// AVX512_BF16: up to 8 rows at a time against one panel, one zmm accumulator per row.
static NC_TARGET_BF16 void rows_avx512(const uint16_t *a, size_t lda, int r0, int r1, const uint16_t *pb, int q0,
                                       int q1, int k32, int n, float *out, size_t ldo) {
    for (int q = q0; q < q1; q++) {
        const uint16_t *panel = pb + (size_t)q * 16 * k32;
        const int cols = n - q * 16 < 16 ? n - q * 16 : 16;
        const __mmask16 mask = (__mmask16)((1u << cols) - 1u);
        for (int r = r0; r < r1; r += 8) {
            const int rows = r1 - r < 8 ? r1 - r : 8;
            __m512 s[8];
#pragma clang loop unroll(full)
            for (int i = 0; i < 8; i++) s[i] = _mm512_setzero_ps();
            for (int p = 0; p < k32 / 2; p++) {
                const __m512bh w = (__m512bh)_mm512_loadu_si512(panel + (size_t)p * 32);
#pragma clang loop unroll(full)
                for (int i = 0; i < 8; i++) {
                    if (i < rows) {
                        int32_t pair;
                        memcpy(&pair, a + (size_t)(r + i) * lda + 2 * p, 4);
                        s[i] = _mm512_dpbf16_ps(s[i], (__m512bh)_mm512_set1_epi32(pair), w);
                    }
                }
            }
            for (int i = 0; i < rows; i++) _mm512_mask_storeu_ps(out + (size_t)(r + i) * ldo + q * 16, mask, s[i]);
        }
    }
}
#endif

void nc_bf16_rows(int kernel, const uint16_t *a, size_t lda, int r0, int r1, const uint16_t *pb, int q0, int q1,
                  int k32, int n, float *out, size_t ldo) {
#if defined(__x86_64__)
    if (kernel == NC_BF16_AVX512 || kernel == NC_BF16_AMX) {
        rows_avx512(a, lda, r0, r1, pb, q0, q1, k32, n, out, ldo);
        return;
    }
#endif
    rows_portable(a, lda, r0, r1, pb, q0, q1, k32, n, out, ldo);
}

// MARK: store

static inline __attribute__((always_inline)) void store_body(const float *acc, size_t ld, int rows, int cols,
                                                               float alpha, float beta, float *c, size_t ldc) {
    for (int i = 0; i < rows; i++) {
        const float *s = acc + (size_t)i * ld;
        float *d = c + (size_t)i * ldc;
        if (beta == 0) {
            if (alpha == 1) memcpy(d, s, (size_t)cols * sizeof(float));
            else for (int j = 0; j < cols; j++) d[j] = alpha * s[j];
        } else if (beta == 1 && alpha == 1) {
            for (int j = 0; j < cols; j++) d[j] += s[j];
        } else {
            for (int j = 0; j < cols; j++) d[j] = alpha * s[j] + beta * d[j];
        }
    }
}
NC_MULTIVERSION(store, (const float *acc, size_t ld, int rows, int cols, float alpha, float beta, float *c, size_t ldc),
                (acc, ld, rows, cols, alpha, beta, c, ldc))
void nc_bf16_store(const float *acc, size_t ld, int rows, int cols, float alpha, float beta, float *c, size_t ldc) {
    store(acc, ld, rows, cols, alpha, beta, c, ldc);
}
