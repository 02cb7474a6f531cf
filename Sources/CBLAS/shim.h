// OpenBLAS's CBLAS header. Debian installs it as <cblas.h> through the alternatives
// system (libopenblas-dev); the thread-control functions below are OpenBLAS extensions
// that its header also declares, repeated here so any CBLAS header works.
#include <cblas.h>

void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
