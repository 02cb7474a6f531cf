// fp32 <-> bf16 conversion and packing into the layouts of CBF16.h.
//
// Every kernel reads operands rounded by this one conversion, so all of them multiply the
// same bf16 values. (The CPU's own vcvtne2ps2bf16 would flush denormal inputs to zero, so
// it is not used: the portable path could not give the same operands.)
//
// These loops are memory-bound and simple; each is compiled twice, for AVX-512 and for
// AVX2, and once for the baseline, and the widest the CPU runs is called. Integer and
// conversion work only: the bits do not depend on which copy runs.
#include "CBF16.h"
#include "Dispatch.h"

#include <string.h>

static inline __attribute__((always_inline)) uint16_t bf16_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    // NaN: keep the sign and the top of the payload, set the quiet bit (rounding could
    // carry a NaN's payload into the exponent and make it an infinity).
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    // Round to nearest, ties to even: add 0x7fff plus the lowest kept bit, then truncate.
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline __attribute__((always_inline)) float f32_of(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline __attribute__((always_inline)) uint32_t pair_of(float lo, float hi) {
    return (uint32_t)bf16_of(lo) | ((uint32_t)bf16_of(hi) << 16);
}

static inline __attribute__((always_inline)) void from_f32_body(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_of(src[i]);
}
NC_MULTIVERSION(from_f32, (const float *src, uint16_t *dst, size_t n), (src, dst, n))
void nc_bf16_from_f32(const float *src, uint16_t *dst, size_t n) { from_f32(src, dst, n); }

void nc_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = f32_of(src[i]);
}

static inline __attribute__((always_inline)) void round_f32_body(const float *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = f32_of(bf16_of(src[i]));
}
NC_MULTIVERSION(round_f32, (const float *src, float *dst, size_t n), (src, dst, n))
void nc_bf16_round_f32(const float *src, float *dst, size_t n) { round_f32(src, dst, n); }

static inline int k32_of(int k) { return (k + 31) & ~31; }

// Packed A: each 32x32 block is 32 rows of 32 values (CBF16.h). Rows past m and columns
// past k are zero, so the kernels never need a tail.
static inline __attribute__((always_inline)) void pack_a_body(const float *a, size_t lda, bool trans, int m, int k,
                                                                int p0, int p1, uint16_t *out) {
    const int k32 = k32_of(k);
    for (int p = p0; p < p1; p++) {
        uint16_t *panel = out + (size_t)p * 32 * k32;
        const int rows = m - p * 32 < 32 ? m - p * 32 : 32;
        for (int kb = 0; kb < k32; kb += 32) {
            uint16_t *block = panel + (size_t)kb * 32;
            const int cols = k - kb < 32 ? k - kb : 32;
            if (rows < 32 || cols < 32) memset(block, 0, 32 * 32 * sizeof(uint16_t));
            if (!trans) {
                for (int r = 0; r < rows; r++) {
                    const float *src = a + (size_t)(p * 32 + r) * lda + kb;
                    for (int e = 0; e < cols; e++) block[r * 32 + e] = bf16_of(src[e]);
                }
            } else {
                // op(A)[row][kk] = a[kk][row]: source rows are contiguous in the panel's rows.
                for (int e = 0; e < cols; e++) {
                    const float *src = a + (size_t)(kb + e) * lda + p * 32;
                    for (int r = 0; r < rows; r++) block[r * 32 + e] = bf16_of(src[r]);
                }
            }
        }
    }
}
NC_MULTIVERSION(pack_a, (const float *a, size_t lda, bool trans, int m, int k, int p0, int p1, uint16_t *out),
                (a, lda, trans, m, k, p0, p1, out))
void nc_bf16_pack_a(const float *a, size_t lda, bool trans, int m, int k, int p0, int p1, uint16_t *out) {
    pack_a(a, lda, trans, m, k, p0, p1, out);
}

// Packed B: for each panel of 16 columns, row pairs interleaved, one 32-bit word per
// (pair, column) holding rows 2p (low half) and 2p+1 (high half). Padding is zero.
static inline __attribute__((always_inline)) void pack_b_body(const float *b, size_t ldb, bool trans, int k, int n,
                                                                int q0, int q1, uint16_t *out) {
    const int k32 = k32_of(k), pairs = k32 / 2, full = k / 2;
    for (int q = q0; q < q1; q++) {
        uint32_t *panel = (uint32_t *)(out + (size_t)q * 16 * k32);
        const int cols = n - q * 16 < 16 ? (n - q * 16 < 0 ? 0 : n - q * 16) : 16;
        if (cols < 16) memset(panel, 0, (size_t)pairs * 16 * sizeof(uint32_t));
        if (!trans) {
            for (int p = 0; p < full; p++) {
                const float *row0 = b + (size_t)(2 * p) * ldb + q * 16, *row1 = row0 + ldb;
                for (int j = 0; j < cols; j++) panel[p * 16 + j] = pair_of(row0[j], row1[j]);
            }
            if (k & 1) {
                const float *row0 = b + (size_t)(k - 1) * ldb + q * 16;
                for (int j = 0; j < cols; j++) panel[full * 16 + j] = pair_of(row0[j], 0);
            }
        } else {
            // op(B)[kk][col] = b[col][kk]: each column is a contiguous source row.
            for (int j = 0; j < cols; j++) {
                const float *src = b + (size_t)(q * 16 + j) * ldb;
                for (int p = 0; p < full; p++) panel[p * 16 + j] = pair_of(src[2 * p], src[2 * p + 1]);
                if (k & 1) panel[full * 16 + j] = pair_of(src[k - 1], 0);
            }
        }
        // Pairs past k (up to K32) are zero.
        const int used = (k + 1) / 2;
        if (cols == 16 && used < pairs) memset(panel + used * 16, 0, (size_t)(pairs - used) * 16 * sizeof(uint32_t));
    }
}
NC_MULTIVERSION(pack_b, (const float *b, size_t ldb, bool trans, int k, int n, int q0, int q1, uint16_t *out),
                (b, ldb, trans, k, n, q0, q1, out))
void nc_bf16_pack_b(const float *b, size_t ldb, bool trans, int k, int n, int q0, int q1, uint16_t *out) {
    pack_b(b, ldb, trans, k, n, q0, q1, out);
}

static inline __attribute__((always_inline)) void pack_rows_body(const float *a, size_t lda, bool trans, int m, int k,
                                                                   int r0, int r1, uint16_t *out) {
    (void)m;
    const int k32 = k32_of(k);
    for (int r = r0; r < r1; r++) {
        uint16_t *dst = out + (size_t)r * k32;
        if (!trans) {
            const float *src = a + (size_t)r * lda;
            for (int e = 0; e < k; e++) dst[e] = bf16_of(src[e]);
        } else {
            for (int e = 0; e < k; e++) dst[e] = bf16_of(a[(size_t)e * lda + r]);
        }
        for (int e = k; e < k32; e++) dst[e] = 0;
    }
}
NC_MULTIVERSION(pack_rows, (const float *a, size_t lda, bool trans, int m, int k, int r0, int r1, uint16_t *out),
                (a, lda, trans, m, k, r0, r1, out))
void nc_bf16_pack_rows(const float *a, size_t lda, bool trans, int m, int k, int r0, int r1, uint16_t *out) {
    pack_rows(a, lda, trans, m, k, r0, r1, out);
}

static inline __attribute__((always_inline)) void unpack_b_body(const uint16_t *packed, int k, int n, int q0, int q1,
                                                                  float *out) {
    const int k32 = k32_of(k);
    for (int q = q0; q < q1; q++) {
        const uint32_t *panel = (const uint32_t *)(packed + (size_t)q * 16 * k32);
        const int cols = n - q * 16 < 16 ? n - q * 16 : 16;
        for (int kk = 0; kk < k; kk++) {
            float *dst = out + (size_t)kk * n + q * 16;
            const int shift = (kk & 1) ? 0 : 16;
            for (int j = 0; j < cols; j++) {
                uint32_t u = (panel[(kk / 2) * 16 + j] << shift) & 0xffff0000u;
                float f;
                memcpy(&f, &u, 4);
                dst[j] = f;
            }
        }
    }
}
NC_MULTIVERSION(unpack_b, (const uint16_t *packed, int k, int n, int q0, int q1, float *out),
                (packed, k, n, q0, q1, out))
void nc_bf16_unpack_b(const uint16_t *packed, int k, int n, int q0, int q1, float *out) {
    unpack_b(packed, k, n, q0, q1, out);
}
