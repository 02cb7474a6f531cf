// LAPACKE, the C interface to LAPACK (Debian: liblapacke-dev). Only the tests use it: an exact
// SVD (dgesvd) is the reference Muon's Newton–Schulz orthogonalisation is checked against.
#include <lapacke.h>
