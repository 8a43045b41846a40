/* Block status, reported the way qemu-nbd reports the same image, so a
 * client sees the same holes and zeroes through either server:
 *
 *   unallocated, zero flag (with or without a host cluster): hole + zero
 *   allocated data, compressed data:                       data
 *   unallocated with a backing file: what the backing chain says there
 *   (its data is data; past the end of a shorter one, hole + zero)
 *
 * qemu looks through to the image file only for images it detects as
 * preallocated with preallocation=metadata (clusters allocated, file
 * sparse); there a cluster whose host bytes are a hole in the file reads
 * as zero but is still allocated: zero, not hole.
 *
 * Each extent also carries its depth, the layer of the backing chain that
 * provides its bytes, as qemu counts it for qemu:allocation-depth: 1 the
 * image itself (data, compressed data, zero clusters and subclusters, in
 * the image file or its data file), 2 its backing file, and so on; 0 when
 * no layer has the bytes (unallocated all the way down).  Past the end of
 * a backing file shorter than the image above it, the zeroes come from
 * that backing file: its depth.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "l2-map.h"
#include "refcount.h"

/* How many mapping runs one call examines at most: the client asks again
 * for the rest.
 */
#define MAX_RUNS_PER_CALL 4096

/* Merges neighbouring extents that agree in what the caller asked to
 * split on (ZQ_STATUS_FLAGS, ZQ_STATUS_DEPTH); what it did not ask for is
 * reported as 0, so that it cannot differ.
 */
struct extent_merger {
  zq_extent_depth_fn fn;
  void *opaque;
  unsigned split;
  uint64_t offset, length;
  uint32_t flags, depth;
  bool stopped;
};

static void
merger_add (struct extent_merger *m, uint64_t offset, uint64_t length,
            uint32_t flags, uint32_t depth)
{
  if (m->stopped || length == 0)
    return;
  if (!(m->split & ZQ_STATUS_FLAGS))
    flags = 0;
  if (!(m->split & ZQ_STATUS_DEPTH))
    depth = 0;
  if (m->length > 0 && m->flags == flags && m->depth == depth &&
      m->offset + m->length == offset) {
    m->length += length;
    return;
  }
  if (m->length > 0 &&
      m->fn (m->opaque, m->offset, m->length, m->flags, m->depth) == -1)
    m->stopped = true;
  m->offset = offset;
  m->length = length;
  m->flags = flags;
  m->depth = depth;
}

static void
merger_finish (struct extent_merger *m)
{
  if (!m->stopped && m->length > 0 &&
      m->fn (m->opaque, m->offset, m->length, m->flags, m->depth) == -1)
    m->stopped = true;
}

/* The most refcounts detect_metadata_preallocation reads (a few tens of
 * milliseconds); an image whose refcount blocks cover more is taken as
 * not preallocated, which only reports its sparse clusters as data.
 */
#define PREALLOCATION_SCAN_MAX (UINT64_C (1) << 24)

/* qemu's test (qcow2_detect_metadata_preallocation): at least ~10/9 as
 * many clusters are in use as the file has blocks allocated.
 *
 * qemu reads the refcount of every cluster up to the end of the file,
 * under the lock every request needs: a small image in a sparse 1 TiB
 * file stalls it for seconds.  Here the walk goes by refcount table
 * entry, so a range without a refcount block (all free) costs one step,
 * the refcounts read are capped, and meta_lock is dropped between
 * blocks so that other requests go on.  img->preallocation_scan_steps
 * counts the steps, for the tests.
 */
static bool
detect_metadata_preallocation (struct zq_image *img)
{
  struct stat st;
  uint64_t real_clusters, threshold, end_cluster, in_use = 0, ti;
  uint64_t read = 0;

  if (fstat (img->fd, &st) == -1)
    return false;
  real_clusters = ((uint64_t) st.st_blocks * 512) / img->cluster_size;
  threshold = real_clusters * 10 / 9;
  if (threshold < real_clusters + 2)
    threshold = real_clusters + 2;
  end_cluster = ((uint64_t) st.st_size + img->cluster_size - 1)
                >> img->cluster_bits;

  for (ti = 0; in_use < threshold; ti++) {
    uint64_t counted;
    bool done;
    int r = 0;

    pthread_mutex_lock (&img->meta_lock);
    done = ti >= img->refcount_table_entries ||
           (ti << img->refblock_bits) >= end_cluster;
    if (!done && (img->refcount_table[ti] & QCOW2_REFT_OFFSET_MASK) != 0) {
      r = refcount_count_in_use (img, ti, end_cluster, &counted);
      read += UINT64_C (1) << img->refblock_bits;
      in_use += counted;
    }
    __atomic_add_fetch (&img->preallocation_scan_steps, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock (&img->meta_lock);
    if (done || r == -1)
      break;
    if (read > PREALLOCATION_SCAN_MAX) {
      zq_debug ("%s: more than %" PRIu64 " refcounts to read to detect "
                "preallocation=metadata; taken as not preallocated",
                img->filename, PREALLOCATION_SCAN_MAX);
      return false;
    }
  }
  return in_use >= threshold;
}

/* Splits an allocated run at the holes of the image file.  All of it is
 * the image's own: depth 1.
 */
static void
add_file_extents (struct zq_image *img, struct extent_merger *m,
                  uint64_t offset, uint64_t host, uint64_t length)
{
  while (length > 0 && !m->stopped) {
    off_t data = lseek (img->fd, host, SEEK_DATA);
    uint64_t n;

    if (data == -1 && errno != ENXIO) {
      merger_add (m, offset, length, 0, 1);  /* cannot tell: data */
      return;
    }
    if (data == -1 || (uint64_t) data > host) {
      /* A hole, to the next data or to the end of the file. */
      n = data == -1 ? length : (uint64_t) data - host;
      if (n > length)
        n = length;
      merger_add (m, offset, n, ZQ_EXTENT_ZERO, 1);
    }
    else {
      off_t hole = lseek (img->fd, host, SEEK_HOLE);
      n = hole == -1 ? length : (uint64_t) hole - host;
      if (n == 0 || n > length)
        n = length;
      merger_add (m, offset, n, 0, 1);
    }
    offset += n;
    host += n;
    length -= n;
  }
}

/* Passes the backing chain's extents on to the image's merger, one layer
 * deeper: the backing file's own image is depth 1 to it, 2 to us.  Its
 * depth 0 (no layer) stays 0.
 */
struct backing_walk {
  struct extent_merger *merger;
  uint64_t end;                 /* of what the backing chain reported */
};

static int
add_backing_extent (void *opaque, uint64_t offset, uint64_t length,
                    uint32_t flags, uint32_t depth)
{
  struct backing_walk *walk = opaque;

  merger_add (walk->merger, offset, length, flags, depth ? depth + 1 : 0);
  walk->end = offset + length;
  return walk->merger->stopped ? -1 : 0;
}

int
qcow2_block_status (struct zq_image *img, uint64_t count, uint64_t offset,
                    unsigned split, zq_extent_depth_fn fn, void *opaque)
{
  struct extent_merger merger = { .fn = fn, .opaque = opaque,
                                  .split = split };
  unsigned runs;

  /* Decided once, on first use, as qemu does.  Two threads racing here
   * compute the same answer.
   */
  if (!__atomic_load_n (&img->metadata_preallocation_checked,
                        __ATOMIC_ACQUIRE)) {
    /* Not for a data file: its clusters are not refcounted. */
    img->metadata_preallocated = !has_data_file (img) &&
                                 detect_metadata_preallocation (img);
    __atomic_store_n (&img->metadata_preallocation_checked, true,
                      __ATOMIC_RELEASE);
  }

  for (runs = 0; count > 0 && runs < MAX_RUNS_PER_CALL && !merger.stopped;
       runs++) {
    struct map_run run;

    if (map_lookup_run (img, offset, count, &run) == -1)
      return -1;

    switch (run.type) {
    case CLUSTER_UNALLOCATED:
      if (img->backing) {
        struct backing_walk walk = { .merger = &merger, .end = offset };

        if (backing_block_status (img, run.bytes, offset, split,
                                  add_backing_extent, &walk) == -1)
          return -1;
        if (walk.end < offset + run.bytes) {
          /* The backing chain stopped early: report up to there. */
          count -= walk.end - offset;
          offset = walk.end;
          goto out;
        }
        break;
      }
      /* No layer has these bytes. */
      merger_add (&merger, offset, run.bytes, ZQ_EXTENT_HOLE | ZQ_EXTENT_ZERO,
                  0);
      break;
    case CLUSTER_ZERO_PLAIN:
    case CLUSTER_ZERO_ALLOC:
      merger_add (&merger, offset, run.bytes, ZQ_EXTENT_HOLE | ZQ_EXTENT_ZERO,
                  1);
      break;
    case CLUSTER_NORMAL:
      /* The file's holes change the flags only: no lseek for a walk
       * that splits on the depth alone.
       */
      if (img->metadata_preallocated && (split & ZQ_STATUS_FLAGS))
        add_file_extents (img, &merger, offset, run.host_offset, run.bytes);
      else
        merger_add (&merger, offset, run.bytes, 0, 1);
      break;
    case CLUSTER_COMPRESSED:
      merger_add (&merger, offset, run.bytes, 0, 1);
      break;
    }
    offset += run.bytes;
    count -= run.bytes;
  }
 out:
  merger_finish (&merger);
  return merger.stopped || count > 0 ? 1 : 0;
}

/* The last merge: the zoned walk reports zone by zone, and a zone's part
 * past its write pointer, without a merger of its own.
 */
static int
add_to_merger (void *opaque, uint64_t offset, uint64_t length, uint32_t flags,
               uint32_t depth)
{
  struct extent_merger *m = opaque;

  merger_add (m, offset, length, flags, depth);
  return m->stopped ? -1 : 0;
}

int
block_status_walk (struct zq_image *img, block_status_fn *walk,
                   uint64_t count, uint64_t offset, unsigned split,
                   zq_extent_depth_fn fn, void *opaque)
{
  struct extent_merger merger = { .fn = fn, .opaque = opaque,
                                  .split = split };

  if (walk (img, count, offset, split, add_to_merger, &merger) == -1)
    return -1;
  merger_finish (&merger);
  return 0;
}
