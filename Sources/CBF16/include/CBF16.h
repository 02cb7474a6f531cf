// bf16 matrix products with fp32 accumulation: conversion, packing into the layouts the
// CPU's bf16 instructions read, and the microkernels that multiply them.
//
// Three kernels compute the same sums of exact products of bf16 operands (the product of
// two bf16 values is exact in fp32), each accumulating in fp32, in its own order:
//   AMX          tdpbf16ps on 16x16 fp32 tiles (Intel Sapphire Rapids and later),
//   AVX512_BF16  vdpbf16ps on 16 fp32 lanes (AMD Zen 4/5, Intel Cooper Lake and later),
//   portable     plain C over the same packed layouts, for any CPU (and the tests).
// Each kernel is compiled for its instructions by a function attribute, whatever the rest
// of the build targets, and is only called where cpuid says the CPU has them: one binary
// runs the best kernel of the machine it lands on.
//
// Layouts (all bf16 as uint16_t; K32 is K rounded up to a multiple of 32, padding zero):
//   packed A   panels of 32 rows: element (row r of panel P, column kk) at
//              P*32*K32 + (kk/32)*1024 + r*32 + kk%32, so each 32x32 block is 32 rows of
//              64 bytes (an AMX A tile is half of one).
//   packed B   panels of 16 columns, the number of panels even (columns padded to a
//              multiple of 32): element (row kk, column 16Q+j) at
//              Q*16*K32 + (kk/2)*32 + j*2 + kk%2, pairs of rows interleaved ("VNNI"), so
//              one 64-byte line holds a row pair for 16 columns: an AMX B tile row and one
//              vdpbf16ps operand.
//   rows A     m rows of K32 bf16 values, for products of a few rows (decoding).
#ifndef NANOCHAT_CBF16_H
#define NANOCHAT_CBF16_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/// The kernels.
enum { NC_BF16_PORTABLE = 0, NC_BF16_AVX512 = 1, NC_BF16_AMX = 2 };

/// Rows of a packed A panel, columns of a packed B panel, and the K granularity.
enum { NC_BF16_PANEL_ROWS = 32, NC_BF16_PANEL_COLS = 16, NC_BF16_KBLOCK = 32 };

/// Whether this CPU can run the kernel now: cpuid and the OS's saved state (XCR0) for
/// AVX512_BF16; for AMX also the kernel's permission to use tile data, which this asks for
/// (arch_prctl ARCH_REQ_XCOMP_PERM) the first time. For NC_BF16_AMX `error` receives 0, or
/// the errno of a refused permission request (then false is returned).
bool nc_bf16_kernel_available(int kernel, int *error);

/// fp32 -> bf16, rounding to nearest even (NaN stays NaN, quieted).
void nc_bf16_from_f32(const float *src, uint16_t *dst, size_t n);
/// bf16 -> fp32 (exact).
void nc_bf16_to_f32(const uint16_t *src, float *dst, size_t n);
/// dst = src rounded to bf16 and widened back to fp32 (dst may equal src).
void nc_bf16_round_f32(const float *src, float *dst, size_t n);

/// Packs panels p0..<p1 of op(A) (m x k; A stored row-major with leading dimension lda, k x m
/// when transposed) into `out`, the base of the packed A (panel 0).
void nc_bf16_pack_a(const float *a, size_t lda, bool trans, int m, int k, int p0, int p1, uint16_t *out);
/// Packs panels q0..<q1 of op(B) (k x n; B stored row-major with leading dimension ldb, n x k
/// when transposed) into `out`, the base of the packed B (panel 0).
void nc_bf16_pack_b(const float *b, size_t ldb, bool trans, int k, int n, int q0, int q1, uint16_t *out);
/// The same packed A as nc_bf16_pack_a with A transposed (stored k x m), cut by K instead:
/// K-blocks kb0..<kb1 (32 values of K each, of K32 / 32) of every panel. Each call reads
/// whole rows of the stored matrix.
void nc_bf16_pack_a_kblocks(const float *a, size_t lda, int m, int k, int kb0, int kb1, uint16_t *out);
/// The same packed B as nc_bf16_pack_b untransposed (B stored k x n), cut by K instead: row
/// pairs p0..<p1 (of K32 / 2) of every panel. Each call reads whole rows of B.
void nc_bf16_pack_b_pairs(const float *b, size_t ldb, int k, int n, int p0, int p1, uint16_t *out);
/// Rows r0..<r1 of op(A) (m x k) as rows of K32 bf16 values.
void nc_bf16_pack_rows(const float *a, size_t lda, bool trans, int m, int k, int r0, int r1, uint16_t *out);
/// op(B) for rows kk (k x n) back to fp32, row-major with leading dimension n, from packed B
/// (columns q0*16 ..< min(n, q1*16)).
void nc_bf16_unpack_b(const uint16_t *packed, int k, int n, int q0, int q1, float *out);

/// acc (a_panels*32 x b_pairs*32, leading dimension ld) = packed A's panels from `pa` times
/// packed B's panel pairs from `pb` (pb at an even panel), over K32, in chunks of kc
/// columns of A (a multiple of 32; each chunk's partial sums are added in order, so the bits
/// depend on kc and the shape only).
void nc_bf16_block(int kernel, const uint16_t *pa, int a_panels, const uint16_t *pb, int b_pairs, int k32, int kc,
                   float *acc, size_t ld);

/// out (rows r0..<r1 x the columns of panels q0..<q1, leading dimension ldo) = rows A
/// (leading dimension lda elements, at least K32) times packed B, each output the sum over
/// K in order: a row's values do not depend on the other rows, nor on r0, r1, q0, q1.
void nc_bf16_rows(int kernel, const uint16_t *a, size_t lda, int r0, int r1, const uint16_t *pb, int q0, int q1,
                  int k32, int n, float *out, size_t ldo);

/// c (rows x cols, leading dimension ldc) = alpha * acc + beta * c; with beta 0, c is not
/// read (it may hold anything, NaN included).
void nc_bf16_store(const float *acc, size_t ld, int rows, int cols, float alpha, float beta, float *c, size_t ldc);

#endif
