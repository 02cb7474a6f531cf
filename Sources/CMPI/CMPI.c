#include "CMPI.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <mpi.h>

int nanochat_mpi_launched(void) {
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (getenv(names[i]) != NULL) return 1;
    }
    return 0;
}

int nanochat_mpi_init(int *rank, int *size) {
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    rc = MPI_Comm_rank(MPI_COMM_WORLD, rank);
    if (rc != MPI_SUCCESS) return rc;
    return MPI_Comm_size(MPI_COMM_WORLD, size);
}

static MPI_Comm node_comm = MPI_COMM_NULL;
// The shared-memory windows, by slot (nanochat_mpi_node_window's `slot`).
#define NODE_WINDOWS 3
static MPI_Win node_windows[NODE_WINDOWS] = {MPI_WIN_NULL, MPI_WIN_NULL, MPI_WIN_NULL};

void nanochat_mpi_finalize(void) {
    int done = 0;
    MPI_Finalized(&done);
    if (done) return;
    for (int w = 0; w < NODE_WINDOWS; w++) {
        if (node_windows[w] == MPI_WIN_NULL) continue;
        MPI_Win_unlock_all(node_windows[w]);
        MPI_Win_free(&node_windows[w]);
    }
    MPI_Finalize();
}

void nanochat_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

// Runs `call` on pieces of at most INT_MAX elements.
#define IN_PIECES(count, size, call)                                   \
    for (size_t done = 0; done < (count);) {                           \
        size_t n = (count) - done > INT_MAX ? INT_MAX : (count) - done; \
        int rc = (call);                                               \
        if (rc != MPI_SUCCESS) return rc;                              \
        done += n;                                                     \
    }                                                                  \
    return MPI_SUCCESS;

int nanochat_mpi_allreduce_sum_double(double *buffer, size_t count) {
    IN_PIECES(count, sizeof(double),
              MPI_Allreduce(MPI_IN_PLACE, buffer + done, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD))
}

int nanochat_mpi_reduce_sum_float(float *buffer, size_t count, int root) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    IN_PIECES(count, sizeof(float),
              rank == root ? MPI_Reduce(MPI_IN_PLACE, buffer + done, (int)n, MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD)
                           : MPI_Reduce(buffer + done, NULL, (int)n, MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD))
}

int nanochat_mpi_bcast(void *buffer, size_t bytes, int root) {
    IN_PIECES(bytes, 1, MPI_Bcast((char *)buffer + done, (int)n, MPI_BYTE, root, MPI_COMM_WORLD))
}

int nanochat_mpi_reduce_scatter_float(const float *send, float *receive, const int *counts) {
    return MPI_Reduce_scatter(send, receive, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

// Started transfers' requests, by handle; a free slot holds MPI_REQUEST_NULL.
#define MAX_STARTED 65536
static MPI_Request started[MAX_STARTED];
static int started_ready = 0, started_next = 0;

// A free slot for a new request, or -1.
static int free_slot(void) {
    if (!started_ready) {
        for (int i = 0; i < MAX_STARTED; i++) started[i] = MPI_REQUEST_NULL;
        started_ready = 1;
    }
    for (int n = 0; n < MAX_STARTED; n++) {
        int i = (started_next + n) % MAX_STARTED;
        if (started[i] == MPI_REQUEST_NULL) {
            started_next = (i + 1) % MAX_STARTED;
            return i;
        }
    }
    return -1;
}

// Checks a transfer's count and finds its slot; 0 and the slot in `*slot`, else MPI's error.
static int claim(size_t count, int *slot) {
    if (count > INT_MAX) return MPI_ERR_COUNT;
    *slot = free_slot();
    return *slot < 0 ? MPI_ERR_REQUEST : MPI_SUCCESS;
}

int nanochat_mpi_start_send_float(const float *buffer, size_t count, int destination, int tag, int *handle) {
    int i = -1, rc = claim(count, &i);
    if (rc == MPI_SUCCESS) rc = MPI_Isend(buffer, (int)count, MPI_FLOAT, destination, tag, MPI_COMM_WORLD, &started[i]);
    if (rc == MPI_SUCCESS) *handle = i;
    return rc;
}

int nanochat_mpi_start_recv_float(float *buffer, size_t count, int source, int tag, int *handle) {
    int i = -1, rc = claim(count, &i);
    if (rc == MPI_SUCCESS) rc = MPI_Irecv(buffer, (int)count, MPI_FLOAT, source, tag, MPI_COMM_WORLD, &started[i]);
    if (rc == MPI_SUCCESS) *handle = i;
    return rc;
}

int nanochat_mpi_test(int handle, int *done) {
    if (handle < 0 || handle >= MAX_STARTED) return MPI_ERR_REQUEST;
    // Does not free the request (MPI_Test would, letting a later transfer take the handle
    // before its owner waits on it); MPI_Wait does.
    return MPI_Request_get_status(started[handle], done, MPI_STATUS_IGNORE);
}

int nanochat_mpi_wait(int handle) {
    if (handle < 0 || handle >= MAX_STARTED) return MPI_ERR_REQUEST;
    return MPI_Wait(&started[handle], MPI_STATUS_IGNORE);
}

int nanochat_mpi_allgather_float(float *buffer, const int *counts) {
    int size = 0;
    int rc = MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rc != MPI_SUCCESS) return rc;
    int *displacements = malloc(sizeof(int) * (size_t)size);
    if (displacements == NULL) return MPI_ERR_NO_MEM;
    for (int r = 0, at = 0; r < size; r++) {
        displacements[r] = at;
        at += counts[r];
    }
    rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer, counts, displacements, MPI_FLOAT, MPI_COMM_WORLD);
    free(displacements);
    return rc;
}

int nanochat_mpi_allgather(const void *send, size_t bytes, void *receive) {
    if (bytes > INT_MAX) return MPI_ERR_COUNT;
    return MPI_Allgather(send, (int)bytes, MPI_BYTE, receive, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
}

// How a rank waits at a barrier. MPI_Barrier polls without pause: a rank that arrives
// early keeps its core busy until the last one comes, and on a host whose cores share
// anything (hyperthreads, a virtual machine's host cores, a power budget) the polling ranks
// slow the one they wait for. By default a rank polls MPI_Ibarrier for a short while and then
// sleeps between polls, giving its core back; NANOCHAT_MPI_WAIT=spin keeps MPI_Barrier
// (for comparisons). Either way the same ranks pass at the same point: no value changes.
static int barrier_spins(void) {
    static int mode = -1;
    if (mode < 0) {
        const char *v = getenv("NANOCHAT_MPI_WAIT");
        mode = v != NULL && strcmp(v, "spin") == 0;
    }
    return mode;
}

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int barrier_on(MPI_Comm comm) {
    if (barrier_spins()) return MPI_Barrier(comm);
    MPI_Request request;
    int rc = MPI_Ibarrier(comm, &request);
    if (rc != MPI_SUCCESS) return rc;
    // Poll freely for 50 µs (the exchange's barriers, where every rank is close behind),
    // then sleep 20 µs between polls (a rank waiting for a slower one's backward pass).
    const double start = seconds_now();
    const struct timespec nap = {0, 20000};
    for (;;) {
        int done = 0;
        if ((rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE)) != MPI_SUCCESS) return rc;
        if (done) return MPI_SUCCESS;
        if (seconds_now() - start > 50e-6) nanosleep(&nap, NULL);
    }
}

int nanochat_mpi_barrier(void) { return barrier_on(MPI_COMM_WORLD); }

int nanochat_mpi_send(const void *buffer, size_t bytes, int destination) {
    IN_PIECES(bytes, 1, MPI_Send((const char *)buffer + done, (int)n, MPI_BYTE, destination, 0, MPI_COMM_WORLD))
}

int nanochat_mpi_recv(void *buffer, size_t bytes, int source) {
    IN_PIECES(bytes, 1, MPI_Recv((char *)buffer + done, (int)n, MPI_BYTE, source, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE))
}

int nanochat_mpi_node_window(int slot, size_t floats, float **peers) {
    int world = 0, local = 0, rc;
    if (slot < 0 || slot >= NODE_WINDOWS || node_windows[slot] != MPI_WIN_NULL) return MPI_ERR_ARG;
    MPI_Win *node_window = &node_windows[slot];
    if ((rc = MPI_Comm_size(MPI_COMM_WORLD, &world)) != MPI_SUCCESS) return rc;
    if (node_comm == MPI_COMM_NULL) {
        rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node_comm);
        if (rc != MPI_SUCCESS) return rc;
        MPI_Comm_set_errhandler(node_comm, MPI_ERRORS_RETURN);
    }
    if ((rc = MPI_Comm_size(node_comm, &local)) != MPI_SUCCESS) return rc;
    if (local != world) return -1;
    // MPI_Aint is signed and pointer-wide: a window past it cannot be asked for (Open MPI 4.1
    // allocates windows of more than 2^31 bytes a rank).
    if (floats > (size_t)PTRDIFF_MAX / sizeof(float)) return MPI_ERR_SIZE;
    float *mine = NULL;
    rc = MPI_Win_allocate_shared((MPI_Aint)(floats * sizeof(float)), sizeof(float), MPI_INFO_NULL, node_comm, &mine, node_window);
    if (rc != MPI_SUCCESS) return rc;
    MPI_Win_set_errhandler(*node_window, MPI_ERRORS_RETURN);
    if ((rc = MPI_Win_lock_all(MPI_MODE_NOCHECK, *node_window)) != MPI_SUCCESS) return rc;
    // Ranks of node_comm are in world order (key 0 keeps it), so rank r's part is peers[r].
    for (int r = 0; r < world; r++) {
        MPI_Aint bytes = 0;
        int unit = 0;
        void *base = NULL;
        if ((rc = MPI_Win_shared_query(*node_window, r, &bytes, &unit, &base)) != MPI_SUCCESS) return rc;
        peers[r] = base;
    }
    return MPI_SUCCESS;
}

// MPI_Win_sync on every window allocated so far.
static int sync_windows(void) {
    for (int w = 0; w < NODE_WINDOWS; w++) {
        if (node_windows[w] == MPI_WIN_NULL) continue;
        int rc = MPI_Win_sync(node_windows[w]);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
}

int nanochat_mpi_node_window_sync(void) {
    int rc = sync_windows();
    if (rc != MPI_SUCCESS) return rc;
    if ((rc = barrier_on(node_comm)) != MPI_SUCCESS) return rc;
    return sync_windows();
}

void nanochat_mpi_error_string(int code, char *text, int capacity) {
    char buffer[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, buffer, &length) != MPI_SUCCESS) length = 0;
    buffer[length < MPI_MAX_ERROR_STRING ? length : MPI_MAX_ERROR_STRING - 1] = 0;
    strncpy(text, buffer, (size_t)capacity - 1);
    text[capacity - 1] = 0;
}

void nanochat_mpi_host(char *text, int capacity) {
    char buffer[MPI_MAX_PROCESSOR_NAME];
    int length = 0;
    if (MPI_Get_processor_name(buffer, &length) != MPI_SUCCESS) length = 0;
    buffer[length] = 0;
    strncpy(text, buffer, (size_t)capacity - 1);
    text[capacity - 1] = 0;
}
