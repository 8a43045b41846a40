/* Copy-on-write of L2 tables shared with internal snapshots.
 *
 * An internal snapshot keeps its own copy of the L1 table, but shares the
 * L2 tables and the data clusters with the active layer.  A shared table
 * (refcount > 1) lacks OFLAG_COPIED in the active L1 entry; writing to it
 * in place would change the snapshot too.  So, as QEMU does (l2_allocate
 * in qcow2-cluster.c), the active layer gets its own copy first: the
 * active L1 entry points at the copy with OFLAG_COPIED, and the active
 * layer's reference to the old table is released once that L1 entry is
 * durable.
 *
 * The data clusters' refcounts do not change.  qcow2 counts a data
 * cluster once per L1 table that reaches it (creating a snapshot adds one
 * to every L2 table and every data cluster; qemu-img check counts the
 * same way), not once per L2 table: the copy replaces the active layer's
 * path through the old table, it does not add one.
 *
 * Data clusters are copied on write already (io-write.c: a NORMAL
 * cluster without OFLAG_COPIED is written into a new cluster and its old
 * reference released), so the snapshot's data stays as it was.
 *
 * Ordering, by flush.c's rules: the copy's own refcount reaches the disk
 * before the copy (the L2 cache depends on the refcount cache), the copy
 * before the L1 entry, and the old table's release after the L1 entry
 * (queue_free).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "internal.h"
#include "l2-cow.h"
#include "refcount.h"

int
l2_copy_on_write (struct zq_image *img, uint64_t l1_index,
                  uint8_t **l2_table)
{
  uint64_t old_offset = img->l1_table[l1_index] & QCOW2_L1E_OFFSET_MASK;
  uint64_t refcount, new_offset, got, i;
  uint8_t *old_table, *copy = NULL, *new_table;

  if (refcount_get (img, old_offset >> img->cluster_bits, &refcount) == -1)
    return -1;
  if (refcount == 1) {
    /* Not shared after all (a snapshot was deleted): only the flag. */
    img->l1_table[l1_index] |= QCOW2_OFLAG_COPIED;
    l1_mark_dirty (img, l1_index, l1_index + 1);
    return metacache_get (img->l2_cache, old_offset, l2_table);
  }

  /* The cache may evict the old table when the new one comes in. */
  copy = malloc (img->cluster_size);
  if (copy == NULL)
    return -1;
  if (metacache_get (img->l2_cache, old_offset, &old_table) == -1)
    goto fail;
  memcpy (copy, old_table, img->cluster_size);

  /* Clusters reached through a shared table are shared too (refcount
   * > 1), so no entry may carry OFLAG_COPIED; a stray one would let a
   * write go in place into the snapshot's data.
   */
  for (i = 0; i < img->cluster_size; i += img->l2_entry_bytes) {
    uint64_t entry = load_be64 (copy + i);
    if (!(entry & QCOW2_OFLAG_COMPRESSED) && (entry & QCOW2_OFLAG_COPIED))
      store_be64 (copy + i, entry & ~QCOW2_OFLAG_COPIED);
  }
  if (refcount_alloc (img, 1, &new_offset, &got) == -1)
    goto fail;
  if (overlap_add (img, META_L2, new_offset, img->cluster_size) == -1 ||
      metacache_get_new (img->l2_cache, new_offset, &new_table) == -1) {
    overlap_remove (img, META_L2, new_offset, img->cluster_size);
    refcount_update (img, new_offset >> img->cluster_bits, -1);
    goto fail;
  }
  memcpy (new_table, copy, img->cluster_size);
  metacache_mark_dirty (img->l2_cache, new_table);
  free (copy);

  img->l1_table[l1_index] = new_offset | QCOW2_OFLAG_COPIED;
  l1_mark_dirty (img, l1_index, l1_index + 1);
  /* The snapshot's table now, which QEMU's overlap checks do not guard
   * by default either.
   */
  overlap_remove (img, META_L2, old_offset, img->cluster_size);
  queue_free (img, old_offset, 1);
  zq_debug ("%s: L2 table %" PRIu64 " shared with a snapshot: copied from "
            "0x%" PRIx64 " to 0x%" PRIx64, img->filename, l1_index,
            old_offset, new_offset);
  *l2_table = new_table;
  return 0;

 fail:
  free (copy);
  return -1;
}
