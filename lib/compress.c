/* Reading compressed clusters.
 *
 * Each worker thread keeps a decompressor: a buffer for the compressed
 * bytes (at most two clusters: 2^(cluster_bits - 8) sectors of 512), one
 * for the decompressed cluster, and its zlib and zstd contexts, reset
 * before each use.  Buffers grow when an image with larger clusters comes
 * along; requests never allocate.
 *
 * What counts as valid data follows qemu (block/qcow2-threads.c):
 *   zlib: a raw deflate stream (no zlib header), which must fill the whole
 *         cluster; the stream may end with the cluster or go on (bytes of
 *         the last sector after the stream are not looked at).
 *   zstd: one or more frames, decompressed one after another until the
 *         cluster is full; the last frame must end exactly there.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

#include <zlib.h>
#include <zstd.h>

#include "compress.h"
#include "internal.h"
#include "qcow2-format.h"
#include "thread-slot.h"

struct decompressor {
  uint8_t *compressed;          /* 2 * capacity bytes */
  uint8_t *cluster;             /* capacity bytes */
  size_t capacity;              /* cluster size the buffers fit */
  z_stream zlib;
  bool zlib_ready;
  ZSTD_DCtx *zstd;
};

static void
destroy_decompressor (void *p)
{
  struct decompressor *d = p;

  if (d->zlib_ready)
    inflateEnd (&d->zlib);
  ZSTD_freeDCtx (d->zstd);
  free (d->compressed);
  free (d->cluster);
  free (d);
}

static void *
make_decompressor (void)
{
  return calloc (1, sizeof (struct decompressor));
}

/* The calling thread's decompressor, with buffers for cluster_size. */
static struct decompressor *
decompressor (struct zq_image *img)
{
  struct decompressor *d;

  d = thread_slot_get (THREAD_SLOT_DECOMPRESSOR, make_decompressor,
                       destroy_decompressor);
  if (d == NULL)
    goto nomem;
  if (d->capacity < img->cluster_size) {
    free (d->compressed);
    free (d->cluster);
    d->compressed = malloc (2 * (size_t) img->cluster_size);
    d->cluster = malloc (img->cluster_size);
    if (d->compressed == NULL || d->cluster == NULL) {
      free (d->compressed);
      free (d->cluster);
      d->compressed = d->cluster = NULL;
      d->capacity = 0;
      goto nomem;
    }
    d->capacity = img->cluster_size;
  }
  return d;

 nomem:
  zq_error ("%s: cannot allocate buffers for compressed clusters: %m",
            img->filename);
  errno = ENOMEM;
  return NULL;
}

/* 0 on success, else sets *why. */
static int
inflate_cluster (struct decompressor *d, size_t in_bytes, size_t out_bytes,
                 const char **why)
{
  int r;

  if (!d->zlib_ready) {
    /* A window of 2^15 bytes reads every raw deflate stream, including
     * qemu's (written with 2^12).
     */
    if (inflateInit2 (&d->zlib, -15) != Z_OK) {
      *why = "cannot initialise the decompressor";
      return -1;
    }
    d->zlib_ready = true;
  }
  else if (inflateReset (&d->zlib) != Z_OK) {
    *why = "cannot reset the decompressor";
    return -1;
  }
  d->zlib.next_in = d->compressed;
  d->zlib.avail_in = in_bytes;
  d->zlib.next_out = d->cluster;
  d->zlib.avail_out = out_bytes;
  r = inflate (&d->zlib, Z_FINISH);
  if ((r == Z_STREAM_END || r == Z_BUF_ERROR) && d->zlib.avail_out == 0)
    return 0;
  if (r == Z_STREAM_END || r == Z_BUF_ERROR)
    *why = "the data ends before the cluster is full";
  else
    *why = d->zlib.msg ? d->zlib.msg : "invalid data";
  return -1;
}

static int
zstd_cluster (struct decompressor *d, size_t in_bytes, size_t out_bytes,
              const char **why)
{
  ZSTD_inBuffer in = { d->compressed, in_bytes, 0 };
  ZSTD_outBuffer out = { d->cluster, out_bytes, 0 };
  size_t r = 0;

  if (d->zstd == NULL && (d->zstd = ZSTD_createDCtx ()) == NULL) {
    *why = "cannot create a decompression context";
    return -1;
  }
  ZSTD_DCtx_reset (d->zstd, ZSTD_reset_session_only);
  while (out.pos < out.size) {
    size_t in_before = in.pos, out_before = out.pos;

    r = ZSTD_decompressStream (d->zstd, &out, &in);
    if (ZSTD_isError (r)) {
      *why = ZSTD_getErrorName (r);
      return -1;
    }
    /* No progress: the input ran out before the cluster was full. */
    if (in.pos == in_before && out.pos == out_before) {
      *why = "the data ends before the cluster is full";
      return -1;
    }
  }
  /* The frame must end with the cluster, not go on beyond it. */
  if (r != 0) {
    *why = "the data holds more than one cluster";
    return -1;
  }
  return 0;
}

int
decompress_cluster (struct zq_image *img, uint64_t entry,
                    uint64_t guest_offset, const uint8_t **cluster)
{
  struct decompressor *d = decompressor (img);
  uint64_t host, bytes;
  const char *why = NULL;
  bool zstd;
  int r;

  if (d == NULL)
    return -1;
  qcow2_compressed_extent (img->cluster_bits, entry, &host, &bytes);
  /* bytes <= 2^(cluster_bits - 8) sectors of 512 = 2 clusters. */
  if (full_pread (img->fd, d->compressed, bytes, host) == -1) {
    zq_error ("%s: reading the compressed cluster at guest offset 0x%"
              PRIx64 " from host offset 0x%" PRIx64 ": %m",
              img->filename, cluster_floor (img, guest_offset), host);
    errno = EIO;
    return -1;
  }
  zstd = img->header.compression_type == QCOW2_COMPRESSION_ZSTD;
  if (zstd)
    r = zstd_cluster (d, bytes, img->cluster_size, &why);
  else
    r = inflate_cluster (d, bytes, img->cluster_size, &why);
  if (r == -1) {
    zq_error ("%s: the compressed cluster at guest offset 0x%" PRIx64
              " (host offset 0x%" PRIx64 ", %" PRIu64 " bytes) is corrupt: "
              "%s: %s", img->filename, cluster_floor (img, guest_offset),
              host, bytes, zstd ? "zstd" : "zlib", why);
    errno = EIO;
    return -1;
  }
  *cluster = d->cluster;
  return 0;
}
