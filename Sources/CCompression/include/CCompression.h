// The decompressors corpora use, as plain C calls Swift can make: zlib's inflate with the
// gzip/zlib header detected (inflateInit2 is a macro Swift cannot import), Snappy's raw
// format, zstd frames, LZ4 blocks (raw, and in Hadoop's framing) and Brotli, whole buffers at
// a time (parquet pages), plus a zstd stream (JSONL .zst files, read in pieces). Debian:
// zlib1g-dev, libsnappy-dev, libzstd-dev, liblz4-dev, libbrotli-dev.
#ifndef NC_COMPRESSION_H
#define NC_COMPRESSION_H
#include <stddef.h>

/// Each returns 0 and sets *written on success, or a negative code; nc_error_text says why.
int nc_gunzip(const void *src, size_t src_len, void *dst, size_t dst_cap, size_t *written);
int nc_snappy(const void *src, size_t src_len, void *dst, size_t dst_cap, size_t *written);
int nc_zstd(const void *src, size_t src_len, void *dst, size_t dst_cap, size_t *written);
/// One raw LZ4 block (parquet's LZ4_RAW).
int nc_lz4_raw(const void *src, size_t src_len, void *dst, size_t dst_cap, size_t *written);
/// Parquet's older LZ4: Hadoop's framed blocks, or else one raw block.
int nc_lz4_hadoop(const void *src, size_t src_len, void *dst, size_t dst_cap, size_t *written);
int nc_brotli(const void *src, size_t src_len, void *dst, size_t dst_cap, size_t *written);
/// A message for the last failure on this thread.
const char *nc_error_text(void);

/// A zstd decompression stream: feed compressed bytes, take decompressed ones.
typedef struct nc_zstd_stream nc_zstd_stream;
nc_zstd_stream *nc_zstd_stream_new(void);
void nc_zstd_stream_free(nc_zstd_stream *s);
/// Decompresses from src[*src_pos..<src_len] into dst[*dst_pos..<dst_cap], advancing both.
/// Returns 0 when a frame has ended exactly at this point, 1 when more input is expected,
/// a negative code on corrupt data.
int nc_zstd_stream_step(nc_zstd_stream *s, const void *src, size_t src_len, size_t *src_pos,
                        void *dst, size_t dst_cap, size_t *dst_pos);
#endif
