// The unit tests start as the executables do: before any test runs, OpenBLAS is moved off a
// fallback core it chose for a CPU it does not recognise (a recent Xeon gets Prescott's SSE3
// kernels from Debian's 0.3.21), by re-executing the test process with OPENBLAS_CORETYPE set
// (see nanochat_blas_correct). The tests then multiply with the kernels a user's run gets, and
// HostCPUTests can check that start-up left nothing to switch on whatever CPU runs them.
#include <stddef.h>

#include "CHost.h"

// glibc hands the program's arguments to the constructors of the executable it starts.
__attribute__((constructor))
static void nanochat_tests_start_up(int argc, char **argv, char **envp) {
    (void)argc;
    (void)envp;
    if (argv != NULL && argv[0] != NULL) nanochat_blas_correct(argv);
}
