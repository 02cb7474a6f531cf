#include "CCompression.h"
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

static _Thread_local char last_error[200];

const char *nc_error_text(void) { return last_error; }

int nc_gunzip(const void *src, size_t src_len, void *dst, size_t dst_cap, size_t *written) {
    z_stream z;
    memset(&z, 0, sizeof z);
    // 15 + 32: the largest window, and a gzip or zlib header recognised from the data.
    if (inflateInit2(&z, 15 + 32) != Z_OK) { snprintf(last_error, sizeof last_error, "zlib: cannot start"); return -1; }
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)src_len;
    z.next_out = (Bytef *)dst;
    z.avail_out = (uInt)dst_cap;
    if (src_len != z.avail_in || dst_cap != z.avail_out) {
        inflateEnd(&z);
        snprintf(last_error, sizeof last_error, "gzip: a buffer over 4 GB");
        return -1;
    }
    int rc = inflate(&z, Z_FINISH);
    *written = dst_cap - z.avail_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
        snprintf(last_error, sizeof last_error, "gzip: %s",
                 rc == Z_BUF_ERROR ? "the data is longer than its page says, or truncated" : (z.msg ? z.msg : "corrupt data"));
        return -1;
    }
    return 0;
}

int nc_snappy(const void *src, size_t src_len, void *dst, size_t dst_cap, size_t *written) {
    size_t n = 0;
    if (snappy_uncompressed_length(src, src_len, &n) != SNAPPY_OK || n > dst_cap) {
        snprintf(last_error, sizeof last_error, "snappy: corrupt data, or longer than its page says");
        return -1;
    }
    n = dst_cap;
    if (snappy_uncompress(src, src_len, dst, &n) != SNAPPY_OK) {
        snprintf(last_error, sizeof last_error, "snappy: corrupt data");
        return -1;
    }
    *written = n;
    return 0;
}

int nc_zstd(const void *src, size_t src_len, void *dst, size_t dst_cap, size_t *written) {
    size_t n = ZSTD_decompress(dst, dst_cap, src, src_len);
    if (ZSTD_isError(n)) {
        snprintf(last_error, sizeof last_error, "zstd: %s", ZSTD_getErrorName(n));
        return -1;
    }
    *written = n;
    return 0;
}

struct nc_zstd_stream { ZSTD_DStream *d; };

nc_zstd_stream *nc_zstd_stream_new(void) {
    ZSTD_DStream *d = ZSTD_createDStream();
    if (!d) return NULL;
    ZSTD_initDStream(d);
    nc_zstd_stream *s = malloc(sizeof *s);
    if (!s) { ZSTD_freeDStream(d); return NULL; }
    s->d = d;
    return s;
}

void nc_zstd_stream_free(nc_zstd_stream *s) {
    if (!s) return;
    ZSTD_freeDStream(s->d);
    free(s);
}

int nc_zstd_stream_step(nc_zstd_stream *s, const void *src, size_t src_len, size_t *src_pos,
                        void *dst, size_t dst_cap, size_t *dst_pos) {
    ZSTD_inBuffer in = { src, src_len, *src_pos };
    ZSTD_outBuffer out = { dst, dst_cap, *dst_pos };
    size_t r = ZSTD_decompressStream(s->d, &out, &in);
    *src_pos = in.pos;
    *dst_pos = out.pos;
    if (ZSTD_isError(r)) {
        snprintf(last_error, sizeof last_error, "zstd: %s", ZSTD_getErrorName(r));
        return -1;
    }
    return r == 0 ? 0 : 1;
}
