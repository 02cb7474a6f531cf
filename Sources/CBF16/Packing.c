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
    // Round to nearest, ties to even: add 0x7fff plus the lowest kept bit, then truncate.
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    // NaN: keep the sign and the top of the payload, set the quiet bit (rounding could
    // carry a NaN's payload into the exponent and make it an infinity). A select, not a
    // branch, so that the loops over rows vectorise.
    const uint32_t quiet = (u >> 16) | 0x40u;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
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
//
// The loops read their source in order: a row of A at a time here (its K values go to the
// panel's blocks in turn), whole rows of the stored matrix in the transposed and B packs
// below. Walking a column strip of a row-major matrix instead (one short piece per row, a
// row apart) leaves every read waiting on memory.
static inline __attribute__((always_inline)) void pack_a_body(const float *a, size_t lda, int m, int k, int p0, int p1,
                                                                uint16_t *out) {
    const int k32 = k32_of(k);
    for (int p = p0; p < p1; p++) {
        uint16_t *panel = out + (size_t)p * 32 * k32;
        const int rows = m - p * 32 < 32 ? m - p * 32 : 32;
        if (rows < 32) memset(panel, 0, (size_t)32 * k32 * sizeof(uint16_t));
        for (int r = 0; r < rows; r++) {
            const float *src = a + (size_t)(p * 32 + r) * lda;
            int kb = 0;
            for (; kb + 32 <= k; kb += 32) {
                uint16_t *dst = panel + (size_t)kb * 32 + r * 32;
                for (int e = 0; e < 32; e++) dst[e] = bf16_of(src[kb + e]);
            }
            if (kb < k32) {
                uint16_t *dst = panel + (size_t)kb * 32 + r * 32;
                for (int e = 0; e < 32; e++) dst[e] = kb + e < k ? bf16_of(src[kb + e]) : 0;
            }
        }
    }
}
NC_MULTIVERSION(pack_a, (const float *a, size_t lda, int m, int k, int p0, int p1, uint16_t *out),
                (a, lda, m, k, p0, p1, out))

// op(A) = Aᵀ, A stored k x m: K-blocks kb0..<kb1 (32 columns of op(A) each, 32 rows of the
// stored A) of every panel. Each 32x32 piece is rounded row by row into a small buffer in
// the stored order and written out transposed from there (both in L1).
static inline __attribute__((always_inline)) void pack_a_t_body(const float *a, size_t lda, int m, int k, int kb0,
                                                                  int kb1, uint16_t *out) {
    const int k32 = k32_of(k), panels = (m + 31) / 32;
    uint16_t piece[32][32];
    for (int kb = kb0; kb < kb1; kb++) {
        const int cols = k - kb * 32 < 32 ? k - kb * 32 : 32;
        for (int p = 0; p < panels; p++) {
            const int rows = m - p * 32 < 32 ? m - p * 32 : 32;
            for (int e = 0; e < 32; e++) {
                const float *src = a + (size_t)(kb * 32 + e) * lda + p * 32;
                if (e < cols && rows == 32) {
                    for (int r = 0; r < 32; r++) piece[e][r] = bf16_of(src[r]);
                } else {
                    for (int r = 0; r < 32; r++) piece[e][r] = e < cols && r < rows ? bf16_of(src[r]) : 0;
                }
            }
            uint16_t *block = out + (size_t)p * 32 * k32 + (size_t)kb * 1024;
            for (int r = 0; r < 32; r++)
                for (int e = 0; e < 32; e++) block[r * 32 + e] = piece[e][r];
        }
    }
}
NC_MULTIVERSION(pack_a_t, (const float *a, size_t lda, int m, int k, int kb0, int kb1, uint16_t *out),
                (a, lda, m, k, kb0, kb1, out))

void nc_bf16_pack_a(const float *a, size_t lda, bool trans, int m, int k, int p0, int p1, uint16_t *out) {
    if (!trans) {
        pack_a(a, lda, m, k, p0, p1, out);
        return;
    }
    // Panel by panel (the caller's cut): every K-block of these panels.
    const int k32 = k32_of(k);
    for (int p = p0; p < p1; p++) {
        const int rows = m - p * 32 < 32 ? m - p * 32 : 32;
        // A one-panel view: the panel's columns of the stored A.
        pack_a_t(a + p * 32, lda, rows, k, 0, k32 / 32, out + (size_t)p * 32 * k32);
    }
}

void nc_bf16_pack_a_kblocks(const float *a, size_t lda, int m, int k, int kb0, int kb1, uint16_t *out) {
    pack_a_t(a, lda, m, k, kb0, kb1, out);
}

// Packed B: for each panel of 16 columns, row pairs interleaved, one 32-bit word per
// (pair, column) holding rows 2p (low half) and 2p+1 (high half). Padding is zero.

// op(B) = B stored k x n: row pairs p0..<p1 (of K32 / 2) of panels q0..<q1, each pair of
// stored rows read in order across the panels.
static inline __attribute__((always_inline)) void pack_b_n_body(const float *b, size_t ldb, int k, int n, int p0,
                                                                  int p1, int q0, int q1, uint16_t *out) {
    const int k32 = k32_of(k), full = n / 16;
    for (int p = p0; p < p1; p++) {
        const bool has0 = 2 * p < k, has1 = 2 * p + 1 < k;
        const float *row0 = b + (size_t)(2 * p) * ldb, *row1 = row0 + ldb;
        for (int q = q0; q < q1; q++) {
            uint32_t *dst = (uint32_t *)(out + (size_t)q * 16 * k32) + (size_t)p * 16;
            if (q < full && has1) {
                for (int j = 0; j < 16; j++) dst[j] = pair_of(row0[q * 16 + j], row1[q * 16 + j]);
            } else {
                for (int j = 0; j < 16; j++) {
                    const int col = q * 16 + j;
                    const float lo = has0 && col < n ? row0[col] : 0, hi = has1 && col < n ? row1[col] : 0;
                    dst[j] = has0 && col < n ? pair_of(lo, hi) : 0;
                }
            }
        }
    }
}
NC_MULTIVERSION(pack_b_n, (const float *b, size_t ldb, int k, int n, int p0, int p1, int q0, int q1, uint16_t *out),
                (b, ldb, k, n, p0, p1, q0, q1, out))

// op(B) = Bᵀ, B stored n x k (a linear layer's weight): panels q0..<q1, 16 row pairs at a
// time: the panel's 16 stored rows are read 32 values at a time, paired in a small buffer,
// and written out as 16 whole lines.
static inline __attribute__((always_inline)) void pack_b_t_body(const float *b, size_t ldb, int k, int n, int q0,
                                                                  int q1, uint16_t *out) {
    const int k32 = k32_of(k);
    uint32_t words[16][16];
    for (int q = q0; q < q1; q++) {
        uint32_t *panel = (uint32_t *)(out + (size_t)q * 16 * k32);
        const int cols = n - q * 16 < 16 ? (n - q * 16 < 0 ? 0 : n - q * 16) : 16;
        for (int kb = 0; kb < k32; kb += 32) {
            const int span = k - kb < 32 ? (k - kb < 0 ? 0 : k - kb) : 32;
            for (int j = 0; j < 16; j++) {
                const float *src = b + (size_t)(q * 16 + j) * ldb + kb;
                if (j < cols && span == 32) {
                    for (int pp = 0; pp < 16; pp++) words[j][pp] = pair_of(src[2 * pp], src[2 * pp + 1]);
                } else {
                    for (int pp = 0; pp < 16; pp++) {
                        const float lo = j < cols && 2 * pp < span ? src[2 * pp] : 0;
                        const float hi = j < cols && 2 * pp + 1 < span ? src[2 * pp + 1] : 0;
                        words[j][pp] = j < cols && 2 * pp < span ? pair_of(lo, hi) : 0;
                    }
                }
            }
            uint32_t *dst = panel + (size_t)(kb / 2) * 16;
            for (int pp = 0; pp < 16; pp++)
                for (int j = 0; j < 16; j++) dst[pp * 16 + j] = words[j][pp];
        }
    }
}
NC_MULTIVERSION(pack_b_t, (const float *b, size_t ldb, int k, int n, int q0, int q1, uint16_t *out),
                (b, ldb, k, n, q0, q1, out))

void nc_bf16_pack_b(const float *b, size_t ldb, bool trans, int k, int n, int q0, int q1, uint16_t *out) {
    if (trans) {
        pack_b_t(b, ldb, k, n, q0, q1, out);
        return;
    }
    // The caller's panels, every row pair of them.
    pack_b_n(b, ldb, k, n, 0, k32_of(k) / 2, q0, q1, out);
}

void nc_bf16_pack_b_pairs(const float *b, size_t ldb, int k, int n, int p0, int p1, uint16_t *out) {
    pack_b_n(b, ldb, k, n, p0, p1, 0, (n + 31) / 32 * 2, out);
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
