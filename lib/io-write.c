/* Writing guest data.
 *
 * A write to clusters that are allocated and not shared goes straight to
 * their host clusters.  Any other write allocates host clusters, as many
 * back to back as the request spans, and writes the untouched head and
 * tail of the first and last cluster (copy-on-write) together with the
 * data in one pwritev.  The L2 entries are updated only after the data is
 * written, so a crash never maps a cluster whose data is missing.  With
 * an external data file the host cluster is the same offset of the data
 * file: nothing is allocated or refcounted (data-file.c).
 *
 * A compressed cluster is never written in place: a write into one reads
 * its old content through read_run (decompressing it), writes a normal
 * cluster, and releases the compressed data (queue_free_compressed).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "be.h"
#include "internal.h"
#include "l2-map.h"
#include "refcount.h"
#include "subcluster.h"
#include "thread-slot.h"

/* Two clusters of the largest size, for the head and the tail of a write:
 * the old content of partly written clusters.  One per worker thread.
 */
static void *
make_cow_buffer (void)
{
  return malloc (2u << QCOW2_MAX_CLUSTER_BITS);
}

uint8_t *
cow_buffer (void)
{
  return thread_slot_get (THREAD_SLOT_COW_BUFFER, make_cow_buffer, free);
}

/* Points iov at the old guest content of [offset, offset + len) inside
 * one cluster described by run (whose first byte is at run_offset): for
 * an unallocated cluster of an image with a backing file, the backing
 * file's data (copied up).
 */
static int
old_content (struct zq_image *img, const struct map_run *run,
             uint64_t run_offset, uint64_t offset, uint64_t len,
             uint8_t *scratch, struct iovec *iov)
{
  struct map_run part;

  if (cluster_reads_as_zero (img, run->type)) {
    iov->iov_base = (void *) zq_zero_cluster;
    iov->iov_len = len;
    return 0;
  }
  part = *run;
  part.bytes = len;
  if (run->type == CLUSTER_NORMAL)
    part.host_offset = run->host_offset + offset - run_offset;
  if (read_run (img, &part, scratch, offset) == -1)
    return -1;
  iov->iov_base = scratch;
  iov->iov_len = len;
  return 0;
}

/* Points the L2 entries of the clusters from guest `offset` at `nr`
 * consecutive host clusters from `host`, and queues the old host clusters
 * (if they are not the ones being reused) for release.  meta_lock held.
 */
static int
link_clusters (struct zq_image *img, uint64_t offset, uint64_t host,
               uint64_t nr, bool reused)
{
  uint8_t *table;
  uint64_t index, i;

  if (map_l2_for_update (img, offset, &table, &index) == -1)
    return -1;
  for (i = 0; i < nr; i++) {
    uint8_t *slot = table + (index + i) * 8;
    uint64_t old = load_be64 (slot);
    enum cluster_type old_type;
    uint64_t old_host;

    if (!reused &&
        map_decode_entry (img, offset, old, &old_type, &old_host) == 0) {
      if (old_type == CLUSTER_COMPRESSED || old_host != 0)
        queue_free_entry (img, old_type == CLUSTER_COMPRESSED, old, old_host);
    }
    store_be64 (slot, (host + (i << img->cluster_bits)) | QCOW2_OFLAG_COPIED);
  }
  metacache_mark_dirty (img->l2_cache, table);
  return 0;
}

/* In fresh clusters (never written, so reading as zeroes) the zero head
 * of a write need not be written: it lies before the data, which extends
 * the file past it.  The zero tail is still written: covering it with
 * fallocate instead was measured slower (ext4 then splits unwritten
 * extents on every later write into the cluster, see docs/benchmarks.md).
 * Adjusts iov, *iovcnt and *write_at (the file offset of iov[0], first
 * the cluster's start) to what is left to write.
 */
static void
skip_zero_head (struct iovec *iov, int *iovcnt, uint64_t *write_at,
                uint64_t in_cluster)
{
  if (in_cluster > 0 && iov[0].iov_base == zq_zero_cluster) {
    for (int i = 1; i < *iovcnt; i++)
      iov[i - 1] = iov[i];
    (*iovcnt)--;
    *write_at += in_cluster;
  }
}

/* One allocating write of the clusters in `run`, from guest `offset`.
 * Returns the number of guest bytes written, or -1.
 */
static int64_t
allocating_write (struct zq_image *img, const struct map_run *run,
                  const uint8_t *buf, uint64_t offset)
{
  uint64_t in_cluster = offset_into_cluster (img, offset);
  uint64_t want = (in_cluster + run->bytes + img->cluster_size - 1)
                  >> img->cluster_bits;
  uint64_t host, got, bytes, tail_len;
  uint8_t *table, *scratch;
  uint64_t index;
  uint64_t write_at;
  bool reused, fresh = false;
  struct iovec iov[3];
  int iovcnt = 0;

  scratch = cow_buffer ();
  if (scratch == NULL)
    return -1;

  map_lock (img, offset);
  /* The L2 table first, so that it does not split the data run. */
  if (map_l2_for_update (img, offset, &table, &index) == -1)
    goto fail_unlock;
  reused = run->type == CLUSTER_ZERO_ALLOC && run->copied;
  if (has_data_file (img)) {
    /* The data file's host offset is the guest offset, and its clusters
     * are not refcounted: nothing to allocate, release or give back.
     */
    host = offset - in_cluster;
    got = want;
    reused = true;
  }
  else if (reused) {
    host = run->host_offset - in_cluster;
    got = want;
  }
  else {
    uint64_t old_end = img->alloc_end;

    if (refcount_alloc (img, want, &host, &got) == -1)
      goto fail_unlock;
    /* Clusters past everything ever allocated were never written: the
     * file already reads as zeroes there.
     */
    fresh = (host >> img->cluster_bits) >= old_end;
  }
  pthread_mutex_unlock (&img->meta_lock);

  bytes = (got << img->cluster_bits) - in_cluster;
  if (bytes > run->bytes)
    bytes = run->bytes;
  tail_len = (got << img->cluster_bits) - in_cluster - bytes;

  if (in_cluster > 0 &&
      old_content (img, run, offset, offset - in_cluster, in_cluster,
                   scratch, &iov[iovcnt++]) == -1)
    goto fail_free;
  iov[iovcnt].iov_base = (void *) buf;
  iov[iovcnt++].iov_len = bytes;
  if (tail_len > 0 &&
      old_content (img, run, offset, offset + bytes, tail_len,
                   scratch + img->cluster_size, &iov[iovcnt++]) == -1)
    goto fail_free;

  write_at = host;
  if (fresh)
    skip_zero_head (iov, &iovcnt, &write_at, in_cluster);
  if (image_pwritev (img, img->data_fd, META_NONE, iov, iovcnt,
                     write_at) == -1) {
    int saved_errno = errno;
    if (!write_refused (img))
      zq_error ("%s: writing guest offset 0x%" PRIx64 " to host offset 0x%"
                PRIx64 ": %m", img->filename, offset, host + in_cluster);
    errno = saved_errno == ENOSPC ? ENOSPC : EIO;
    goto fail_free;
  }

  map_lock (img, offset);
  if (link_clusters (img, offset, host, got, reused) == -1)
    goto fail_unlock_free;
  pthread_mutex_unlock (&img->meta_lock);
  return bytes;

 fail_free:
  pthread_mutex_lock (&img->meta_lock);
 fail_unlock_free:
  /* Nothing points at the new clusters yet: give them back at once. */
  if (!reused) {
    int saved_errno = errno;
    for (uint64_t i = 0; i < got; i++)
      refcount_update (img, (host >> img->cluster_bits) + i, -1);
    errno = saved_errno;
  }
 fail_unlock:
  pthread_mutex_unlock (&img->meta_lock);
  return -1;
}

/* Whether the clusters of run take a write where they are: allocated to
 * this image alone, so that writing them changes no metadata.
 */
static bool
writes_in_place (const struct map_run *run)
{
  return run->type == CLUSTER_NORMAL && run->copied;
}

static int
write_run_in_place (struct zq_image *img, const struct map_run *run,
                    const uint8_t *buf, uint64_t offset)
{
  int saved_errno;

  if (image_pwrite (img, img->data_fd, META_NONE, buf, run->bytes,
                    run->host_offset) == 0)
    return 0;
  saved_errno = errno;
  if (!write_refused (img))
    zq_error ("%s: writing guest offset 0x%" PRIx64 " to host offset 0x%"
              PRIx64 ": %m", img->filename, offset, run->host_offset);
  errno = saved_errno == ENOSPC ? ENOSPC : EIO;
  return -1;
}

/* Writes the runs from offset, in place where they take it; with
 * allocate, the others too (allocating or copying on write), else up to
 * the first of them.  Returns the number of bytes written, or -1.
 */
static int64_t
write_runs (struct zq_image *img, const uint8_t *buf, uint64_t count,
            uint64_t offset, bool allocate)
{
  uint64_t done = 0;

  while (done < count) {
    struct map_run run;
    int64_t written;

    if (map_lookup_run (img, offset + done, count - done, &run) == -1)
      return -1;

    if (writes_in_place (&run)) {
      if (write_run_in_place (img, &run, buf + done, offset + done) == -1)
        return -1;
      written = run.bytes;
    }
    else if (!allocate)
      break;
    else if ((written = img->extended_l2 ?
              subcluster_write (img, &run, buf + done, offset + done) :
              allocating_write (img, &run, buf + done, offset + done)) == -1)
      return -1;

    done += written;
  }
  return done;
}

int
write_locked (struct zq_image *img, const uint8_t *buf, uint64_t count,
              uint64_t offset)
{
  return write_runs (img, buf, count, offset, true) == -1 ? -1 : 0;
}

/* A write into clusters already allocated to this image alone changes no
 * mapping, so it needs only that the mapping hold still: it shares its
 * clusters with reads and with other such writes, and a stream of small
 * writes into one cluster (a zone's log, a sequential 4k stream) runs
 * side by side instead of in single file.  The clusters a write must
 * allocate or copy are then taken alone, from the first of them.
 */
int
qcow2_write (struct zq_image *img, const void *buf, uint64_t count,
             uint64_t offset)
{
  struct range_lock_node range;
  int64_t done;
  int r;

  /* Shared: the runs written in place change no mapping. */
  range_lock_acquire (&img->ranges, &range, cluster_floor (img, offset),
                      cluster_ceil (img, offset + count), false);
  done = write_runs (img, buf, count, offset, false);
  range_lock_release (&img->ranges, &range);
  if (done == -1)
    return -1;
  if ((uint64_t) done == count)
    return 0;
  buf = (const uint8_t *) buf + done;
  offset += done;
  count -= done;

  range_lock_acquire (&img->ranges, &range, cluster_floor (img, offset),
                      cluster_ceil (img, offset + count), true);
  r = write_locked (img, buf, count, offset);
  range_lock_release (&img->ranges, &range);
  return r;
}
