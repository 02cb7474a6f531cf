// Data-parallel training's few MPI calls, as plain C functions Swift can call (MPI's handles
// are macros over library globals). Every call works on MPI_COMM_WORLD, returns MPI's error
// code (0 on success) and splits counts above INT_MAX into several calls.
#ifndef NANOCHAT_CMPI_H
#define NANOCHAT_CMPI_H

#include <stddef.h>

/// Whether an MPI launcher (mpirun, srun with PMIx) started this process: its environment
/// names a world size. Without one, nothing calls MPI.
int nanochat_mpi_launched(void);

/// MPI_Init_thread with MPI_THREAD_FUNNELED (only the main thread calls MPI), errors
/// returned rather than fatal. Fills rank and size.
int nanochat_mpi_init(int *rank, int *size);
void nanochat_mpi_finalize(void);
/// Ends every rank of the job with `code` (MPI_Abort).
void nanochat_mpi_abort(int code);

int nanochat_mpi_allreduce_sum_double(double *buffer, size_t count);
/// Sums every rank's `buffer` into `root`'s, in place there (the others' are left as they were).
int nanochat_mpi_reduce_sum_float(float *buffer, size_t count, int root);
int nanochat_mpi_bcast(void *buffer, size_t bytes, int root);
/// Sums every rank's `send` (the ranks' parts laid end to end, `counts[r]` floats for rank r)
/// and leaves in `receive` this rank's part of the sum (MPI_Reduce_scatter).
int nanochat_mpi_reduce_scatter_float(const float *send, float *receive, const int *counts);
/// Point-to-point transfers started without waiting (MPI_Isend, MPI_Irecv) under a tag
/// (0 ... 32767): return 0 and a handle in `*handle` for `nanochat_mpi_test`/`nanochat_mpi_wait`;
/// the buffer stays untouched until the transfer completes. At most 65536 may be in flight;
/// `count` is at most INT_MAX.
int nanochat_mpi_start_send_float(const float *buffer, size_t count, int destination, int tag, int *handle);
int nanochat_mpi_start_recv_float(float *buffer, size_t count, int source, int tag, int *handle);
/// Whether a started transfer has completed (MPI_Request_get_status; it also moves the
/// transfers on): sets `*done` to 1 when it has. The handle stays taken until waited for.
int nanochat_mpi_test(int handle, int *done);
/// Waits for a started transfer (MPI_Wait); its handle is free after.
int nanochat_mpi_wait(int handle);
/// Every rank's part of `buffer` (`counts[r]` floats for rank r, laid end to end; this rank's
/// already in place) copied to every rank (MPI_Allgatherv).
int nanochat_mpi_allgather_float(float *buffer, const int *counts);
/// Each rank's `bytes` bytes from `send`, concatenated in rank order into `receive`.
int nanochat_mpi_allgather(const void *send, size_t bytes, void *receive);
int nanochat_mpi_barrier(void);
/// Point to point, for gathering sharded optimiser state onto rank 0.
int nanochat_mpi_send(const void *buffer, size_t bytes, int destination);
int nanochat_mpi_recv(void *buffer, size_t bytes, int source);

/// A window of `floats` floats per rank in memory every rank can read, when all ranks run on
/// one host (MPI_Win_allocate_shared over MPI_COMM_TYPE_SHARED), in slot 0, 1 or 2 (each
/// allocated once): fills `peers[r]` with rank r's part (`peers` has one slot per rank) and
/// returns 0; returns -1 when the ranks span several hosts (nothing is allocated), else
/// MPI's error code.
int nanochat_mpi_node_window(int slot, size_t floats, float **peers);
/// Makes every rank's writes to the windows visible to every rank, and waits for all of them
/// (MPI_Win_sync, MPI_Barrier, MPI_Win_sync).
int nanochat_mpi_node_window_sync(void);

/// MPI's text for an error code.
void nanochat_mpi_error_string(int code, char *text, int capacity);
/// The processor (host) name.
void nanochat_mpi_host(char *text, int capacity);

#endif
