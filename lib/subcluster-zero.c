/* Write-zeroes and trim on images with extended L2 entries.
 *
 * Write-zeroes sets zero bits for whole subclusters, and for partial ones
 * that read as zeroes already, and writes zeroes into the other partial
 * ones; whole clusters are handled as without subclusters (all 32 zero
 * bits, the host cluster kept or, with may_trim, released).  Trim works
 * on whole clusters only, as for other images: entry and bitmap 0, unless
 * the image has a backing file, whose data must not show through: then
 * the subclusters get their zero bits instead.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>

#include "internal.h"
#include "l2-map.h"
#include "subcluster.h"

/* Stores an entry into a cached L2 table.  meta_lock held. */
static void
set_entry (struct zq_image *img, uint8_t *table, uint64_t index,
           uint64_t entry, uint64_t bitmap)
{
  subcluster_store_entry (table, index, entry, bitmap);
  metacache_mark_dirty (img->l2_cache, table);
}

enum whole_how { WHOLE_TRIM, WHOLE_ZERO, WHOLE_ZERO_MAY_TRIM };

/* Trims or zeroes one whole cluster through its entry. */
static int
whole_cluster (struct zq_image *img, uint64_t cluster, enum whole_how how)
{
  /* Unallocated, the cluster could show the backing file's data: as
   * qemu does, only zero bits are trusted to read as zeroes whatever the
   * backing file's size (it may grow, or be replaced by a rebase).
   */
  bool backing_behind = img->backing != NULL;
  uint64_t index, new_entry, new_bitmap;
  struct ext_entry old;
  uint8_t *table;
  bool release;

  map_lock (img, cluster);
  if (map_l2_existing_for_update (img, cluster, &table, &index) == -1)
    goto fail_unlock;
  if (table == NULL && !backing_behind) {
    /* unallocated: reads as zeroes already */
    pthread_mutex_unlock (&img->meta_lock);
    return 0;
  }
  if ((table == NULL &&
       map_l2_for_update (img, cluster, &table, &index) == -1) ||
      subcluster_load_entry (img, table, index, cluster, &old) == -1)
    goto fail_unlock;
  if (how == WHOLE_ZERO && old.has_host && old.copied && !old.compressed) {
    new_entry = old.host | QCOW2_OFLAG_COPIED;
    release = false;
  }
  else {
    new_entry = 0;
    /* Data file clusters are not refcounted: nothing to release. */
    release = (old.compressed || old.has_host) && !has_data_file (img);
  }
  new_bitmap = how == WHOLE_TRIM && !backing_behind ?
               0 : ALL_SUBCLUSTERS << 32;
  if (new_entry != old.entry || new_bitmap != old.bitmap) {
    set_entry (img, table, index, new_entry, new_bitmap);
    if (release)
      queue_free_entry (img, old.compressed, old.entry, old.host);
  }
  pthread_mutex_unlock (&img->meta_lock);
  return 0;

 fail_unlock:
  pthread_mutex_unlock (&img->meta_lock);
  return -1;
}

/* Whether guest [offset, offset + count) reads as zeroes: 1, 0, or -1. */
static int
reads_as_zeroes (struct zq_image *img, uint64_t count, uint64_t offset)
{
  while (count > 0) {
    struct map_run run;

    if (map_lookup_run (img, offset, count, &run) == -1)
      return -1;
    if (!reads_as_zero_at (img, run.type, offset))
      return 0;
    offset += run.bytes;
    count -= run.bytes;
  }
  return 1;
}

/* Sets the zero bits of whole subclusters first..last of one cluster. */
static int
zero_subclusters (struct zq_image *img, uint64_t cluster, unsigned first,
                  unsigned last, bool dry_run)
{
  uint64_t mask = subcluster_mask (first, last), index, new_bitmap;
  uint64_t start = cluster + ((uint64_t) first << img->subcluster_bits);
  struct ext_entry old;
  uint8_t *table;

  map_lock (img, cluster);
  if ((dry_run ? map_l2_existing (img, cluster, &table, &index)
       : map_l2_existing_for_update (img, cluster, &table, &index)) == -1)
    goto fail_unlock;
  /* Without an L2 table the subclusters are unallocated: zeroes, or the
   * backing file's data, which only the zero bits hide.
   */
  if (table == NULL && (dry_run || img->backing == NULL)) {
    pthread_mutex_unlock (&img->meta_lock);
    return 0;
  }
  if ((table == NULL &&
       map_l2_for_update (img, cluster, &table, &index) == -1) ||
      subcluster_load_entry (img, table, index, cluster, &old) == -1)
    goto fail_unlock;
  if (old.compressed) {
    /* A compressed cluster has no subclusters: write the zeroes. */
    pthread_mutex_unlock (&img->meta_lock);
    if (dry_run)
      return 1;
    return write_locked (img, zq_zero_cluster,
                         (uint64_t) (last - first + 1) << img->subcluster_bits,
                         start);
  }
  new_bitmap = (old.bitmap & ~mask) | (mask << 32);
  if (!dry_run && new_bitmap != old.bitmap)
    set_entry (img, table, index, old.entry, new_bitmap);
  pthread_mutex_unlock (&img->meta_lock);
  return 0;

 fail_unlock:
  pthread_mutex_unlock (&img->meta_lock);
  return -1;
}

/* A partial subcluster at an edge of a write-zeroes, of which [start,
 * end) is to be zeroed: when all of it already reads as zeroes it only
 * joins the zero bits (*joins), as qemu does (then it stays zero even if
 * a backing file grows); otherwise zeroes are written into [start, end).
 * Returns 0, -1, or with dry_run 1 when zeroes would have to be written.
 */
static int
zero_edge (struct zq_image *img, uint64_t subcluster, uint64_t start,
           uint64_t end, bool dry_run, bool *joins)
{
  uint64_t sc_len = UINT64_C (1) << img->subcluster_bits;
  int r;

  if (sc_len > img->virtual_size - subcluster)
    sc_len = img->virtual_size - subcluster;
  r = reads_as_zeroes (img, sc_len, subcluster);
  if (r == -1)
    return -1;
  *joins = r == 1;
  if (*joins)
    return 0;
  if (dry_run)
    return 1;
  return write_locked (img, zq_zero_cluster, end - start, start);
}

/* Write-zeroes of [start, end) inside one cluster, not all of it: zero
 * bits for the subclusters it covers, and for the partial ones at its
 * edges that read as zeroes already; zeroes written into the others.
 * With dry_run, returns 1 when zeroes would have to be written.
 */
static int
zero_in_cluster (struct zq_image *img, uint64_t cluster, uint64_t start,
                 uint64_t end, bool to_image_end, bool dry_run)
{
  uint64_t sc = UINT64_C (1) << img->subcluster_bits;
  uint64_t head_sc = start & ~(sc - 1), tail_sc = (end - 1) & ~(sc - 1);
  /* The zero bits go on the subclusters [first_whole, last_whole). */
  uint64_t first_whole = head_sc, last_whole = tail_sc + sc;
  bool joins;
  int r;

  if (start > head_sc) {
    r = zero_edge (img, cluster + head_sc, cluster + start,
                   cluster + (end < head_sc + sc ? end : head_sc + sc),
                   dry_run, &joins);
    if (r != 0)
      return r;
    if (!joins)
      first_whole = head_sc + sc;
  }
  /* The last subcluster of the image is whole once the range reaches the
   * end of the image.
   */
  if (!to_image_end && end < last_whole && last_whole > first_whole) {
    r = zero_edge (img, cluster + tail_sc, cluster + tail_sc, cluster + end,
                   dry_run, &joins);
    if (r != 0)
      return r;
    if (!joins)
      last_whole = tail_sc;
  }
  if (first_whole >= last_whole)
    return 0;
  return zero_subclusters (img, cluster, first_whole >> img->subcluster_bits,
                           (last_whole >> img->subcluster_bits) - 1, dry_run);
}

int
subcluster_zero (struct zq_image *img, uint64_t count, uint64_t offset,
                 bool may_trim, bool dry_run)
{
  while (count > 0) {
    uint64_t cluster = cluster_floor (img, offset);
    uint64_t start = offset - cluster, len = img->cluster_size - start;
    bool to_image_end;
    int r;

    if (len > count)
      len = count;
    to_image_end = offset + len == img->virtual_size;
    if (start == 0 && (len == img->cluster_size || to_image_end))
      r = dry_run ? 0 : whole_cluster (img, cluster, may_trim ?
                                       WHOLE_ZERO_MAY_TRIM : WHOLE_ZERO);
    else
      r = zero_in_cluster (img, cluster, start, start + len, to_image_end,
                           dry_run);
    if (r != 0)
      return r;
    offset += len;
    count -= len;
  }
  return 0;
}

int
subcluster_trim (struct zq_image *img, uint64_t count, uint64_t offset)
{
  while (count > 0) {
    uint64_t len = count < img->cluster_size ? count : img->cluster_size;

    if (whole_cluster (img, offset, WHOLE_TRIM) == -1)
      return -1;
    offset += len;
    count -= len;
  }
  return 0;
}
