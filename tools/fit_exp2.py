#!/usr/bin/env python3
"""Fits the polynomial of Float.vexp2Decay (Sources/Tensor/Core/Scalar.swift).

2^r on r in [-1/2, 1/2] as p(r) = 1 + c1 r + ... + c5 r^5: the constant term is held at
exactly 1 so that a decay of y = 0 is exactly 1 and no decay of y <= 0 exceeds 1. The other
coefficients minimise the largest relative error (Lawson's iteration: least squares
re-weighted by the error until the weights settle on the extremes). The script then runs
the Swift kernel's arithmetic in float32 (fused multiply-adds rounded once) over y in
[-126, 0] and prints the worst relative error against exp2 in float64, which the Swift test
`exp2DecayRelativeErrorWithinTwoUlp` bounds by 2.4e-7.

Needs numpy. Run: python3 tools/fit_exp2.py
"""
import numpy as np

DEGREE = 5


def fit(degree):
    r = np.linspace(-0.5, 0.5, 20001)
    r = r[np.abs(r) > 1e-6]
    target = 2.0 ** r
    # relative residual of 1 + sum c_j r^j against 2^r, linear in c
    basis = np.stack([r ** j for j in range(1, degree + 1)], axis=1) / target[:, None]
    rhs = (target - 1) / target
    weights = np.ones_like(r)
    for _ in range(300):
        root = np.sqrt(weights)
        c, *_ = np.linalg.lstsq(basis * root[:, None], rhs * root, rcond=None)
        err = np.abs(basis @ c - rhs)
        weights *= err
        weights /= weights.sum()
    return [1.0] + [float(np.float32(v)) for v in c], float(err.max())


def kernel_float32(coeffs, y):
    f32 = np.float32
    y = np.maximum(y.astype(f32), f32(-126))
    shifted = (y + f32(12582912)).astype(f32)
    r = (y - (shifted - f32(12582912)).astype(f32)).astype(f32)
    p = np.full_like(r, f32(coeffs[-1]))
    for c in coeffs[-2::-1]:   # float64 holds a float32 product exactly: one rounding, like an FMA
        p = (p.astype(np.float64) * r.astype(np.float64) + c).astype(f32)
    n = shifted.view(np.int32) - 0x4B400000
    return p.astype(np.float64) * 2.0 ** n


if __name__ == "__main__":
    coeffs, minimax = fit(DEGREE)
    y = np.concatenate([np.linspace(-126, 0, 2_000_003), [-0.5, -1e-9, 0.0]]).astype(np.float32)
    got = kernel_float32(coeffs, y)
    want = np.exp2(y.astype(np.float64))
    print(f"degree {DEGREE}: relative error of the polynomial {minimax:.3g}, "
          f"of the float32 kernel {np.max(np.abs(got - want) / want):.3g}")
    print("coefficients c1..c5 (as float32):")
    for j, c in enumerate(coeffs[1:], start=1):
        print(f"  c{j} = {c!r}")
