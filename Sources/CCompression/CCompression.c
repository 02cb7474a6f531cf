#include "CCompression.h"
#include <brotli/decode.h>
#include <lz4.h>
#include <snappy-c.h>
#include <stdint.h>
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

int nc_lz4_raw(const void *src, size_t src_len, void *dst, size_t dst_cap, size_t *written) {
    if (src_len > (size_t)LZ4_MAX_INPUT_SIZE || dst_cap > (size_t)0x7fffffff) {
        snprintf(last_error, sizeof last_error, "lz4: a block of %zu bytes is larger than LZ4 allows", src_len);
        return -1;
    }
    int n = LZ4_decompress_safe((const char *)src, (char *)dst, (int)src_len, (int)dst_cap);
    if (n < 0) {
        snprintf(last_error, sizeof last_error, "lz4: corrupt block (error at input byte %d)", -n - 1);
        return -1;
    }
    *written = (size_t)n;
    return 0;
}

static uint32_t big_endian_u32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int nc_lz4_hadoop(const void *src, size_t src_len, void *dst, size_t dst_cap, size_t *written) {
    // Hadoop's framing: blocks of [uncompressed size][compressed size] (big-endian u32) and
    // an LZ4 block, until the input ends; where the input is not such a run of blocks that
    // fills the output exactly, it is read as one raw LZ4 block (older writers' meaning of
    // the codec), as Arrow's reader does.
    const unsigned char *in = src;
    size_t at = 0, out = 0;
    int framed = src_len >= 8;
    while (framed && at < src_len) {
        if (src_len - at < 8) { framed = 0; break; }
        uint32_t expected = big_endian_u32(in + at), size = big_endian_u32(in + at + 4);
        at += 8;
        if (size > src_len - at || expected > dst_cap - out) { framed = 0; break; }
        int n = LZ4_decompress_safe((const char *)in + at, (char *)dst + out, (int)size, (int)expected);
        if (n < 0 || (uint32_t)n != expected) { framed = 0; break; }
        at += size;
        out += (size_t)n;
    }
    if (framed && out == dst_cap) {
        *written = out;
        return 0;
    }
    return nc_lz4_raw(src, src_len, dst, dst_cap, written);
}

int nc_brotli(const void *src, size_t src_len, void *dst, size_t dst_cap, size_t *written) {
    size_t n = dst_cap;
    BrotliDecoderResult r = BrotliDecoderDecompress(src_len, (const uint8_t *)src, &n, (uint8_t *)dst);
    if (r != BROTLI_DECODER_RESULT_SUCCESS) {
        snprintf(last_error, sizeof last_error, "brotli: %s",
                 r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT ? "the data decompresses to more bytes than the header says"
                 : r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT ? "the data ends early" : "corrupt data");
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
