/* Trim and write-zeroes.
 *
 * Both work on whole clusters through their L2 entries; the partial
 * clusters at either end of a write-zeroes are written with zeroes (unless
 * they already read as zeroes), while trim leaves them alone, as NBD lets
 * it.  Host clusters that lose their last reference are released after
 * the next flush (queue_free; queue_free_compressed for the host clusters
 * a compressed cluster's data touches).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>

#include "be.h"
#include "internal.h"
#include "l2-map.h"
#include "subcluster.h"

enum zero_how {
  ZERO_BY_TRIM,                 /* trim: the entry becomes unallocated */
  ZERO_KEEP_ALLOCATION,         /* write zeroes without MAY_TRIM */
  ZERO_MAY_DEALLOCATE,          /* write zeroes with MAY_TRIM */
};

/* Whether the guest cluster at `offset`, unallocated, could show backing
 * data.  As in qemu, version 3 images trust only the zero flag to read as
 * zeroes whatever the backing file's size (it may grow, or a rebase may
 * replace it); version 2 has no zero flag and would have to write zeroes,
 * so there only clusters inside the backing file count.
 */
static bool
backing_behind (const struct zq_image *img, uint64_t offset)
{
  return img->backing != NULL &&
         (img->header.version >= 3 || backing_reaches (img, offset));
}

/* The L2 entry that makes a cluster read as zeroes.  *write_zeroes says
 * that only writing zeroes will do (version 2 images have no zero flag);
 * *release that the old host cluster (or a compressed cluster's data,
 * whose `host` is 0) must be released.  behind_is_data says that the
 * cluster, unallocated, would show a backing file's data.
 */
static uint64_t
zeroed_entry (const struct zq_image *img, enum zero_how how, uint64_t entry,
              enum cluster_type type, uint64_t host, bool behind_is_data,
              bool *write_zeroes, bool *release)
{
  bool has_data = host != 0 || type == CLUSTER_COMPRESSED;

  *write_zeroes = false;
  *release = false;

  /* With a backing file an unallocated cluster shows the backing data:
   * only the zero flag hides it.  Version 2 has no zero flag, so there
   * write-zeroes writes zeroes, and trim (advisory) leaves the cluster
   * as it is rather than let the backing data show through.  That holds
   * for every cluster, even past the end of the backing file, so that
   * what a trim does never depends on the backing file's size.
   */
  if (img->backing != NULL && img->header.version < 3 &&
      how == ZERO_BY_TRIM)
    return entry;
  if (behind_is_data) {
    if (img->header.version < 3) {
      *write_zeroes = true;
      return entry;
    }
    if (type == CLUSTER_ZERO_PLAIN)
      return entry;
    if (how != ZERO_KEEP_ALLOCATION || type == CLUSTER_UNALLOCATED ||
        type == CLUSTER_COMPRESSED || !(entry & QCOW2_OFLAG_COPIED)) {
      *release = has_data;
      return QCOW2_OFLAG_ZERO;
    }
    return host | QCOW2_OFLAG_COPIED | QCOW2_OFLAG_ZERO;
  }

  if (how == ZERO_BY_TRIM) {
    *release = has_data;
    return 0;
  }
  if (img->header.version < 3) {
    if (type == CLUSTER_UNALLOCATED)
      return entry;
    if (how == ZERO_MAY_DEALLOCATE) {
      *release = has_data;
      return 0;
    }
    *write_zeroes = true;
    return entry;
  }
  if (type == CLUSTER_UNALLOCATED || type == CLUSTER_ZERO_PLAIN)
    return entry;
  if (how == ZERO_MAY_DEALLOCATE || type == CLUSTER_COMPRESSED ||
      !(entry & QCOW2_OFLAG_COPIED)) {
    *release = has_data;
    return QCOW2_OFLAG_ZERO;
  }
  return host | QCOW2_OFLAG_COPIED | QCOW2_OFLAG_ZERO;
}

/* Applies `how` to the whole clusters [offset, offset + count).  Version 2
 * clusters that need zeroes written are written a contiguous run at a time
 * with the meta_lock dropped.  With dry_run, changes nothing and returns 1
 * when some zeroes would have to be written (for FAST_ZERO).
 */
static int
zero_clusters (struct zq_image *img, uint64_t count, uint64_t offset,
               enum zero_how how, bool dry_run)
{
  while (count > 0) {
    uint64_t chunk = l2_coverage (img) - (offset & (l2_coverage (img) - 1));
    uint64_t write_from = 0, write_len = 0, done, i, n;
    uint8_t *table;
    uint64_t index;

    if (chunk > count)
      chunk = count;
    n = chunk >> img->cluster_bits;

    map_lock (img, offset);
    if ((dry_run ? map_l2_existing (img, offset, &table, &index)
         : map_l2_existing_for_update (img, offset, &table, &index)) == -1)
      goto fail_unlock;
    /* Without an L2 table every cluster is unallocated: nothing to do,
     * unless a backing file shows through them.
     */
    for (i = 0; (table != NULL || img->backing != NULL) && i < n; i++) {
      uint64_t guest = offset + (i << img->cluster_bits);
      uint64_t entry = table ? load_be64 (table + (index + i) * 8) : 0;
      uint64_t new_entry, host;
      enum cluster_type type;
      bool write_zeroes, release;

      if (map_decode_entry (img, guest, entry, &type, &host) == -1)
        goto fail_unlock;
      new_entry = zeroed_entry (img, how, entry, type, host,
                                backing_behind (img, guest),
                                &write_zeroes, &release);
      if (has_data_file (img))
        release = false;        /* data file clusters are not refcounted */
      if (write_zeroes) {
        if (dry_run) {
          pthread_mutex_unlock (&img->meta_lock);
          return 1;
        }
        if (write_len == 0)
          write_from = guest;
        write_len += img->cluster_size;
        continue;
      }
      if (write_len > 0)
        break;                  /* write the run, then go on from here */
      if (new_entry == entry || dry_run)
        continue;
      if (table == NULL &&
          map_l2_for_update (img, offset, &table, &index) == -1)
        goto fail_unlock;
      store_be64 (table + (index + i) * 8, new_entry);
      metacache_mark_dirty (img->l2_cache, table);
      if (release)
        queue_free_entry (img, type == CLUSTER_COMPRESSED, entry, host);
    }
    pthread_mutex_unlock (&img->meta_lock);
    done = i > 0 ? i << img->cluster_bits : chunk;

    while (write_len > 0) {
      uint64_t len = write_len < sizeof zq_zero_cluster ?
                     write_len : sizeof zq_zero_cluster;
      if (write_locked (img, zq_zero_cluster, len, write_from) == -1)
        return -1;
      write_from += len;
      write_len -= len;
    }
    offset += done;
    count -= done;
  }
  return 0;

 fail_unlock:
  pthread_mutex_unlock (&img->meta_lock);
  return -1;
}

/* Zeroes part of one cluster, unless it already reads as zeroes.  With
 * dry_run, returns 1 when zeroes would have to be written.
 */
static int
zero_partial (struct zq_image *img, uint64_t count, uint64_t offset,
              bool dry_run)
{
  struct map_run run;

  if (count == 0)
    return 0;
  if (map_lookup_run (img, offset, count, &run) == -1)
    return -1;
  if (reads_as_zero_at (img, run.type, offset))
    return 0;
  if (dry_run)
    return 1;
  return write_locked (img, zq_zero_cluster, count, offset);
}

/* Splits [offset, offset + count) into a partial head cluster, whole
 * clusters, and a partial tail cluster (head or tail may be empty; a
 * range inside one cluster is all head).
 */
static void
split_clusters (const struct zq_image *img, uint64_t count, uint64_t offset,
                uint64_t *head, uint64_t *whole_start, uint64_t *whole,
                uint64_t *tail)
{
  uint64_t end = offset + count;
  uint64_t first_whole = cluster_ceil (img, offset);
  /* The last cluster of an image whose size is not a multiple of the
   * cluster size is whole once the range reaches the end of the image.
   */
  uint64_t last_whole = end == img->virtual_size ? cluster_ceil (img, end)
                                                 : cluster_floor (img, end);

  if (first_whole < last_whole) {
    *head = first_whole - offset;
    *whole_start = first_whole;
    *whole = last_whole - first_whole;
    *tail = end > last_whole ? end - last_whole : 0;
  }
  else if (first_whole > offset && first_whole < end) {
    *head = first_whole - offset;     /* straddles one boundary */
    *whole_start = first_whole;
    *whole = 0;
    *tail = end - first_whole;
  }
  else {
    *head = count;
    *whole_start = end;
    *whole = 0;
    *tail = 0;
  }
}

int
qcow2_zero (struct zq_image *img, uint64_t count, uint64_t offset,
            unsigned flags)
{
  struct range_lock_node range;
  enum zero_how how = (flags & ZQ_MAY_TRIM) ? ZERO_MAY_DEALLOCATE
                                            : ZERO_KEEP_ALLOCATION;
  uint64_t head, whole_start, whole, tail;
  int r;

  split_clusters (img, count, offset, &head, &whole_start, &whole, &tail);

  range_lock_acquire (&img->ranges, &range, cluster_floor (img, offset),
                      cluster_ceil (img, offset + count), true);
  if (img->extended_l2) {
    r = 0;
    if ((flags & ZQ_FAST_ZERO) &&
        (r = subcluster_zero (img, count, offset, false, true)) == 1) {
      errno = ENOTSUP;
      r = -1;
    }
    /* A raw data file reads as zeroes over the whole range first; the
     * partial subclusters at the edges are written with zeroes after.
     */
    if (r == 0)
      r = data_file_zero (img, count, offset);
    if (r == 0)
      r = subcluster_zero (img, count, offset, flags & ZQ_MAY_TRIM, false);
    goto out;
  }
  if (flags & ZQ_FAST_ZERO) {
    r = zero_partial (img, head, offset, true);
    if (r == 0)
      r = zero_clusters (img, whole, whole_start, how, true);
    if (r == 0)
      r = zero_partial (img, tail, offset + count - tail, true);
    if (r == 1) {
      errno = ENOTSUP;        /* not an error worth logging: NBD asks */
      r = -1;
    }
    if (r == -1)
      goto out;
  }
  r = zero_partial (img, head, offset, false);
  if (r == 0)
    r = data_file_zero (img, whole, whole_start);
  if (r == 0)
    r = zero_clusters (img, whole, whole_start, how, false);
  if (r == 0)
    r = zero_partial (img, tail, offset + count - tail, false);
 out:
  range_lock_release (&img->ranges, &range);
  return r;
}

int
qcow2_trim (struct zq_image *img, uint64_t count, uint64_t offset)
{
  struct range_lock_node range;
  uint64_t head, whole_start, whole, tail;
  int r;

  split_clusters (img, count, offset, &head, &whole_start, &whole, &tail);
  if (whole == 0)
    return 0;

  range_lock_acquire (&img->ranges, &range, whole_start,
                      whole_start + whole, true);
  r = data_file_zero (img, whole, whole_start);
  if (r == 0 && img->extended_l2)
    r = subcluster_trim (img, whole, whole_start);
  else if (r == 0)
    r = zero_clusters (img, whole, whole_start, ZERO_BY_TRIM, false);
  range_lock_release (&img->ranges, &range);
  return r;
}
