/* Repairing the refcounts of a dirty image on a read-write open.
 *
 * An image with lazy refcounts (compatible bit 0) may be written by qemu
 * without keeping its refcount blocks current; qemu sets the dirty bit
 * (incompatible bit 0) while they are stale and clears it once they are
 * written back.  A process killed in between leaves the bit set and the
 * refcounts wrong: too low for clusters allocated since (a later
 * allocation would hand them out again) or too high for clusters freed
 * (leaks).
 *
 * Before the first write we do what qemu does on such an open: rebuild
 * every host cluster's references from the metadata (the traversal of
 * zq_check, lib/check.c), correct the refcount blocks in place, make them
 * durable, and only then clear the dirty bit.  A crash during the repair
 * leaves the bit set, so the next open repairs again.
 *
 * The engine itself keeps the refcounts current on every allocation and
 * never sets the dirty bit, so an image it wrote never needs this.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "internal.h"
#include "refcount.h"

struct repair_counts {
  uint64_t leaks;               /* stored refcount above the references */
  uint64_t corrected;           /* stored refcount below the references */
  uint64_t new_blocks;
};

/* Sets entry `j` of `block` (covering cluster `cluster`) to `want`. */
static void
fix_entry (struct zq_image *img, uint8_t *block, uint64_t j, uint64_t want,
           struct repair_counts *counts)
{
  uint64_t stored = refblock_entry_get (block, img->refcount_order, j);

  if (stored == want)
    return;
  if (stored > want)
    counts->leaks++;
  else
    counts->corrected++;
  refblock_entry_set (block, img->refcount_order, j, want);
  metacache_mark_dirty (img->refblock_cache, block);
}

/* Every existing refcount block, against the rebuilt references.
 * Clusters past the end of the file have no references.
 */
static int
fix_existing_blocks (struct zq_image *img, const uint32_t *references,
                     uint64_t nb_clusters, struct repair_counts *counts)
{
  const uint64_t per_block = UINT64_C (1) << img->refblock_bits;
  uint64_t ti, j;

  for (ti = 0; ti < img->refcount_table_entries; ti++) {
    uint64_t offset = img->refcount_table[ti] & QCOW2_REFT_OFFSET_MASK;
    uint8_t *block;

    if (offset == 0)
      continue;
    if (metacache_get (img->refblock_cache, offset, &block) == -1)
      return -1;
    for (j = 0; j < per_block; j++) {
      uint64_t k = (ti << img->refblock_bits) + j;
      fix_entry (img, block, j, k < nb_clusters ? references[k] : 0, counts);
    }
  }
  return 0;
}

/* Clusters with references but no refcount block: a new block for each
 * such table entry, placed past the end of the file (no metadata points
 * there), covered by itself or by an existing block.
 */
static int
create_missing_blocks (struct zq_image *img, const uint32_t *references,
                       uint64_t nb_clusters, struct repair_counts *counts)
{
  const uint64_t per_block = UINT64_C (1) << img->refblock_bits;
  uint64_t ti, j;

  for (ti = 0; ti < img->refcount_table_entries; ti++) {
    uint64_t first = ti << img->refblock_bits;
    uint64_t block_cluster, block_ti, self_refs = 0;
    uint8_t *block;
    bool needed = false;

    if ((img->refcount_table[ti] & QCOW2_REFT_OFFSET_MASK) != 0 ||
        first >= nb_clusters)
      continue;
    for (j = 0; j < per_block && first + j < nb_clusters && !needed; j++)
      needed = references[first + j] != 0;
    if (!needed)
      continue;

    block_cluster = img->alloc_end > nb_clusters ? img->alloc_end
                                                 : nb_clusters;
    block_ti = block_cluster >> img->refblock_bits;
    if (block_ti != ti &&
        (block_ti >= img->refcount_table_entries ||
         (img->refcount_table[block_ti] & QCOW2_REFT_OFFSET_MASK) == 0)) {
      zq_error ("%s: refcount table entry %" PRIu64 " has no refcount "
                "block although its clusters are in use, and there is no "
                "room for a new one; repair the image with "
                "'qemu-img check -r all'", img->filename, ti);
      errno = ENOTSUP;
      return -1;
    }
    if (block_ti != ti && refcount_update (img, block_cluster, 1) == -1)
      return -1;
    if (overlap_add (img, META_REFCOUNT_BLOCK,
                     block_cluster << img->cluster_bits,
                     img->cluster_size) == -1 ||
        metacache_get_new (img->refblock_cache,
                           block_cluster << img->cluster_bits, &block) == -1)
      return -1;
    for (j = 0; j < per_block && first + j < nb_clusters; j++) {
      if (references[first + j])
        counts->corrected++;
      refblock_entry_set (block, img->refcount_order, j,
                          references[first + j]);
    }
    if (block_ti == ti) {
      self_refs = 1;
      refblock_entry_set (block, img->refcount_order,
                          block_cluster - first, self_refs);
    }
    metacache_mark_dirty (img->refblock_cache, block);
    img->alloc_end = block_cluster + 1;
    counts->new_blocks++;

    /* The block is durable before the table entry points at it. */
    if (metacache_writeback (img->refblock_cache) == -1 ||
        sync_file (img) == -1)
      return -1;
    img->refcount_table[ti] = block_cluster << img->cluster_bits;
    if (refcount_write_table_entry (img, ti) == -1)
      return -1;
  }
  return 0;
}

int
repair_dirty_image (struct zq_image *img)
{
  struct zq_check_result check;
  struct repair_counts counts = { 0 };
  uint32_t *references = NULL;
  uint64_t nb_clusters = 0, k;
  uint64_t incompatible;
  struct qcow2_header changed = img->header;
  uint8_t fields[QH_SERIALIZED_MAX];
  int r = -1;

  if (check_rebuild_references (img->filename, &check, &references,
                                &nb_clusters) == -1)
    return -1;
  if (check.corruptions || check.check_errors || check.wp_errors) {
    zq_error ("%s: the image is dirty (incompatible bit 0) and its metadata "
              "has %" PRIu64 " error(s) besides the refcounts; zqcow2 will "
              "not repair it: open it read-only, or repair it with "
              "'qemu-img check -r all'", img->filename,
              check.corruptions + check.check_errors + check.wp_errors);
    errno = EINVAL;
    goto out;
  }
  for (k = 0; k < nb_clusters; k++)
    if (references[k] > img->refcount_max) {
      zq_error ("%s: host cluster 0x%" PRIx64 " has %" PRIu32 " references, "
                "more than %u-bit refcounts can count; repair the image "
                "with 'qemu-img check -r all'", img->filename,
                k << img->cluster_bits, references[k],
                1u << img->refcount_order);
      errno = EINVAL;
      goto out;
    }

  /* Clusters past what the refcount table can describe: the table would
   * have to grow, which this repair does not do.
   */
  for (k = img->refcount_table_entries << img->refblock_bits;
       k < nb_clusters; k++)
    if (references[k]) {
      zq_error ("%s: host cluster 0x%" PRIx64 " is in use but beyond what "
                "the refcount table (%" PRIu64 " entries) covers; repair "
                "the image with 'qemu-img check -r all'", img->filename,
                k << img->cluster_bits, img->refcount_table_entries);
      errno = ENOTSUP;
      goto out;
    }

  if (fix_existing_blocks (img, references, nb_clusters, &counts) == -1 ||
      create_missing_blocks (img, references, nb_clusters, &counts) == -1 ||
      metacache_writeback (img->refblock_cache) == -1 ||
      sync_file (img) == -1)
    goto repair_failed;

  /* The refcounts are durable: only now may the bit go. */
  incompatible = img->header.incompatible_features & ~QCOW2_INCOMPAT_DIRTY;
  changed.incompatible_features = incompatible;
  header_serialize (&changed, fields);
  if (image_pwrite (img, img->fd, META_HEADER,
                    fields + QH_INCOMPATIBLE_FEATURES, 8,
                    QH_INCOMPATIBLE_FEATURES) == -1 ||
      sync_file (img) == -1)
    goto repair_failed;
  img->header.incompatible_features = incompatible;
  img->free_cluster_hint = 0;
  if (nb_clusters > img->alloc_end)
    img->alloc_end = nb_clusters;

  zq_warning ("%s: the image was dirty (lazy refcounts not written back); "
              "repaired its refcounts: %" PRIu64 " leaked cluster(s) "
              "freed, %" PRIu64 " refcount(s) corrected, %" PRIu64
              " refcount block(s) added", img->filename, counts.leaks,
              counts.corrected, counts.new_blocks);
  r = 0;
  goto out;

 repair_failed:
  zq_error ("%s: repairing the refcounts of the dirty image failed; the "
            "dirty bit stays set", img->filename);
  if (errno == 0)
    errno = EIO;
 out:
  free (references);
  return r;
}

/* Persistent bitmaps.  zqcow2 does not maintain them, so a read-write
 * open clears autoclear bit 0 and the extension stops vouching for them;
 * a reader then ignores the extension (QEMU: "all bitmaps are now
 * considered inconsistent") and the clusters of the directory, tables
 * and bitmap data would be leaks.  bitmaps_collect counts them while the
 * bit still stands; bitmaps_release drops those references once the
 * cleared bit is durable (a crash in between leaks them, no worse).  The
 * extension's bytes are left as they are.
 */
int
bitmaps_collect (struct zq_image *img, uint32_t **references,
                 uint64_t *nb_clusters)
{
  struct zq_check_result check;

  *references = NULL;
  *nb_clusters = 0;
  if (!(img->header.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS))
    return 0;
  if (check_bitmap_references (img->filename, &check, references,
                               nb_clusters) == -1)
    return -1;
  if (check.corruptions || check.check_errors) {
    /* Releasing references a damaged directory claims could free a
     * cluster something else uses: leave them leaked instead.
     */
    zq_warning ("%s: the persistent bitmaps' metadata has errors; their "
                "clusters are left allocated ('qemu-img check -r leaks' "
                "frees them)", img->filename);
    free (*references);
    *references = NULL;
    *nb_clusters = 0;
  }
  return 0;
}

int
bitmaps_release (struct zq_image *img, uint32_t *references,
                 uint64_t nb_clusters)
{
  uint64_t k, released = 0;

  for (k = 0; k < nb_clusters; k++) {
    uint64_t refcount;

    if (references[k] == 0)
      continue;
    if (refcount_get (img, k, &refcount) == -1)
      return -1;
    if (refcount < references[k]) {
      zq_warning ("%s: host cluster 0x%" PRIx64 " of the persistent "
                  "bitmaps has refcount %" PRIu64 ", below its %" PRIu32
                  " bitmap reference(s); left as it is", img->filename,
                  k << img->cluster_bits, refcount, references[k]);
      continue;
    }
    if (refcount_update (img, k, -(int64_t) references[k]) == -1)
      return -1;
    released++;
  }
  if (released == 0)
    return 0;
  if (metacache_writeback (img->refblock_cache) == -1 ||
      sync_file (img) == -1)
    return -1;
  zq_debug ("%s: released %" PRIu64 " cluster(s) of the persistent "
            "bitmaps, which zqcow2 does not maintain", img->filename,
            released);
  return 0;
}
