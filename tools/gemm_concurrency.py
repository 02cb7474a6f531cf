"""Concurrent single-thread sgemm: N threads of one process against N processes.

Usage: python3 tools/gemm_concurrency.py LIBOPENBLAS N [ITERS]

Calls cblas_sgemm of the given OpenBLAS (one thread each, as nanochat-swift calls it) at the
shapes of a d12 step's products for one 512-token sequence: on one core alone, in N processes
started together, and in N threads of this process (each with its own operands, then sharing
the weight operand). Prints GFLOPS summed over the N, the threads' share of the processes',
and the minor page faults per call in the threads. It answers whether OpenBLAS called from
many threads of one process runs as fast as from as many processes. Set OPENBLAS_CORETYPE
where OpenBLAS does not recognise the CPU (it then falls back to slow generic kernels).
No dependencies beyond the standard library.
"""
import ctypes as C, threading, time, sys, os, multiprocessing as mp, resource
from array import array
LIB = sys.argv[1]; N = int(sys.argv[2]); ITERS = int(sys.argv[3]) if len(sys.argv) > 3 else 10
def load():
    lib = C.CDLL(LIB); lib.openblas_set_num_threads(1)
    f = lib.cblas_sgemm
    f.argtypes = [C.c_int]*6 + [C.c_float, C.c_void_p, C.c_int, C.c_void_p, C.c_int, C.c_float, C.c_void_p, C.c_int]
    return f
def buf(n): a = array('f', [0.01]) * n; return a, a.buffer_info()[0]
CASES = {  # name: (transA, transB, M, N, K)
 'fwd x.Wt 512x3072x768': (0, 1, 512, 3072, 768),
 'dx dy.W 512x768x3072': (0, 0, 512, 768, 3072),
 'dW dyt.x 3072x768 k512': (1, 0, 3072, 768, 512),
 'dW slab 192x768 k8192': (1, 0, 192, 768, 8192),
 'fwd attn 512x768x768': (0, 1, 512, 768, 768),
}
def operands(c, shared=None):
    ta, tb, M, Nn, K = c
    A = buf(M*K); B = shared if shared else buf(K*Nn); Cm = buf(M*Nn)
    lda = M if ta else K; ldb = K if tb else Nn
    return (A, B, Cm, lda, ldb)
def run(f, c, ops, iters):
    ta, tb, M, Nn, K = c; A, B, Cm, lda, ldb = ops
    for _ in range(iters):
        f(101, 112 if ta else 111, 112 if tb else 111, M, Nn, K, 1.0, A[1], lda, B[1], ldb, 0.0, Cm[1], Nn)
def proc(c, bar, q):
    f = load(); ops = operands(c); run(f, c, ops, 1); bar.wait(); t = time.perf_counter(); run(f, c, ops, ITERS); q.put(time.perf_counter() - t)
def gflop(c): return 2.0 * c[2] * c[3] * c[4] * ITERS / 1e9
if __name__ == '__main__':
    f = load()
    for name, c in CASES.items():
        ops = operands(c); run(f, c, ops, 1); t = time.perf_counter(); run(f, c, ops, ITERS); one = gflop(c) / (time.perf_counter() - t)
        bar = mp.Barrier(N); q = mp.Queue(); ps = [mp.Process(target=proc, args=(c, bar, q)) for _ in range(N)]
        [p.start() for p in ps]; ts = [q.get() for _ in ps]; [p.join() for p in ps]
        procs = sum(gflop(c) / t for t in ts)
        res = {}
        for mode in ('private', 'sharedB'):
            shared = buf(c[4]*c[3]) if mode == 'sharedB' else None
            opss = [operands(c, shared) for _ in range(N)]; tb = threading.Barrier(N); times = [0]*N
            def th(i):
                run(f, c, opss[i], 1); tb.wait(); t = time.perf_counter(); run(f, c, opss[i], ITERS); times[i] = time.perf_counter() - t
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            ts2 = [threading.Thread(target=th, args=(i,)) for i in range(N)]; [t.start() for t in ts2]; [t.join() for t in ts2]
            res[mode + 'flt'] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / (N * (ITERS + 1))
            res[mode] = sum(gflop(c) / t for t in times)
        print(f"{name:26s} 1 core {one:7.1f} | {N} procs {procs:8.1f} | {N} threads private {res['private']:8.1f} ({res['private']/procs:.2f}) sharedB {res['sharedB']:8.1f} ({res['sharedB']/procs:.2f}) GFLOPS; faults per call in threads {res['privateflt']:.0f} {res['sharedBflt']:.0f}", flush=True)
