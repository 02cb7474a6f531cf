// Open MPI's C interface (Debian: libopenmpi-dev). Used by the CMPI wrapper only: MPI's
// handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM) are macros Swift cannot import.
#include <mpi.h>
