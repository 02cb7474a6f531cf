// The unit tests start as the executables do: before any test runs, OpenBLAS is moved off a
// fallback core it chose for a CPU it does not recognise (a recent Xeon gets Prescott's SSE3
// kernels from Debian's 0.3.21), by re-executing the test process with OPENBLAS_CORETYPE set
// (see nanochat_blas_correct). The tests then multiply with the kernels a user's run gets, and
// HostCPUTests can check that start-up left nothing to switch on whatever CPU runs them.
//
// The tests also run with guard bytes around every block of the buffer pool
// (NANOCHAT_GUARD_BUFFERS=1, unless the environment says otherwise): a kernel that writes
// one element past its buffer, or before it, stops the test process naming the block,
// where unguarded it would change no value a test looks at.
#include <stddef.h>
#include <stdlib.h>

#include "CHost.h"

// glibc hands the program's arguments to the constructors of the executable it starts.
__attribute__((constructor))
static void nanochat_tests_start_up(int argc, char **argv, char **envp) {
    (void)argc;
    (void)envp;
    setenv("NANOCHAT_GUARD_BUFFERS", "1", 0);
    if (argv != NULL && argv[0] != NULL) nanochat_blas_correct(argv);
}
