/* Host cluster refcounts.
 *
 * A refcount table (kept whole in memory) points at refcount blocks (in
 * the refblock cache); each block holds 2^refblock_bits refcounts.
 *
 * Ordering: a new refcount block is written and synced before the table
 * entry that points at it; a moved refcount table is written and synced
 * before the header points at it.  Increments reach the disk before any
 * L2 entry that uses the cluster (the L2 cache depends on this cache).
 * Decrements wait for the metadata that dropped the reference to be
 * durable (queue_free in flush.c).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "internal.h"
#include "refcount.h"

/* qcow2 host offsets must fit in L2 entries' bits 9..55. */
#define MAX_HOST_OFFSET (UINT64_C (1) << 56)

uint64_t
refblock_entry_get (const uint8_t *block, unsigned order, uint64_t index)
{
  switch (order) {
  case 0: case 1: case 2: {
    unsigned bits = 1u << order;
    uint64_t bit = index * bits;
    return (block[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
  }
  case 3: return block[index];
  case 4: return load_be16 (block + index * 2);
  case 5: return load_be32 (block + index * 4);
  default: return load_be64 (block + index * 8);
  }
}

void
refblock_entry_set (uint8_t *block, unsigned order, uint64_t index,
                    uint64_t value)
{
  switch (order) {
  case 0: case 1: case 2: {
    unsigned bits = 1u << order;
    uint64_t bit = index * bits;
    uint8_t mask = ((1u << bits) - 1) << (bit % 8);
    block[bit / 8] = (block[bit / 8] & ~mask) |
                     ((value << (bit % 8)) & mask);
    break;
  }
  case 3: block[index] = value; break;
  case 4: store_be16 (block + index * 2, value); break;
  case 5: store_be32 (block + index * 4, value); break;
  default: store_be64 (block + index * 8, value); break;
  }
}

static uint64_t
block_index (const struct zq_image *img, uint64_t cluster)
{
  return cluster & ((UINT64_C (1) << img->refblock_bits) - 1);
}

/* The refcount block covering `cluster`, or NULL with *missing set when
 * the table has no block for it (all its clusters are free).
 */
static int
get_block (struct zq_image *img, uint64_t cluster, uint8_t **block,
           bool *missing)
{
  uint64_t ti = cluster >> img->refblock_bits;
  uint64_t block_offset;

  *missing = false;
  if (ti >= img->refcount_table_entries ||
      (block_offset = img->refcount_table[ti] & QCOW2_REFT_OFFSET_MASK) == 0) {
    *missing = true;
    *block = NULL;
    return 0;
  }
  if ((block_offset & (img->cluster_size - 1)) != 0)
    return image_corrupt (img, "refcount table entry %" PRIu64 " has "
                          "unaligned offset 0x%" PRIx64, ti, block_offset);
  /* Every block the table may use was recorded at open or when it was
   * created: one beyond the end of the file, or on other metadata, is
   * not followed (its writeback would grow the file or destroy that).
   */
  if (!overlap_reftable_entry_valid (img, ti)) {
    char where[64];
    return image_corrupt (img, "refcount table entry %" PRIu64 " points at "
                          "0x%" PRIx64 ", %s", ti, block_offset,
                          overlap_where (img, block_offset, where,
                                         sizeof where));
  }
  return metacache_get (img->refblock_cache, block_offset, block);
}

int
refcount_get (struct zq_image *img, uint64_t cluster, uint64_t *value)
{
  uint8_t *block;
  bool missing;

  if (get_block (img, cluster, &block, &missing) == -1)
    return -1;
  *value = missing ? 0 : refblock_entry_get (block, img->refcount_order,
                                             block_index (img, cluster));
  return 0;
}

int
refcount_update (struct zq_image *img, uint64_t cluster, int64_t delta)
{
  uint8_t *block;
  bool missing;
  uint64_t old, new;

  if (get_block (img, cluster, &block, &missing) == -1)
    return -1;
  if (missing) {
    zq_error ("%s: no refcount block covers host cluster 0x%" PRIx64
              " (corrupt image)", img->filename,
              cluster << img->cluster_bits);
    errno = EIO;
    return -1;
  }
  old = refblock_entry_get (block, img->refcount_order,
                            block_index (img, cluster));
  new = old + delta;
  if ((delta < 0 && (uint64_t) -delta > old) ||
      (delta > 0 && (new < old || new > img->refcount_max))) {
    zq_error ("%s: refcount of host cluster 0x%" PRIx64 " would go from %"
              PRIu64 " to %s (corrupt image or refcount_bits too small)",
              img->filename, cluster << img->cluster_bits, old,
              delta < 0 ? "below 0" : "above its maximum");
    errno = EIO;
    return -1;
  }
  refblock_entry_set (block, img->refcount_order,
                      block_index (img, cluster), new);
  metacache_mark_dirty (img->refblock_cache, block);
  if (new == 0 && cluster < img->free_cluster_hint)
    img->free_cluster_hint = cluster;
  return 0;
}

int
refcount_count_in_use (struct zq_image *img, uint64_t ti, uint64_t end,
                       uint64_t *in_use)
{
  uint64_t first = ti << img->refblock_bits;
  uint64_t n = UINT64_C (1) << img->refblock_bits, j;
  uint8_t *block;
  bool missing;

  *in_use = 0;
  if (first >= end)
    return 0;
  if (end - first < n)
    n = end - first;
  if (get_block (img, first, &block, &missing) == -1)
    return -1;
  if (missing)
    return 0;
  for (j = 0; j < n; j++)
    *in_use += refblock_entry_get (block, img->refcount_order, j) != 0;
  return 0;
}

int
refcount_write_table_entry (struct zq_image *img, uint64_t ti)
{
  uint8_t entry[8];

  store_be64 (entry, img->refcount_table[ti]);
  if (image_pwrite (img, img->fd, META_REFCOUNT_TABLE, entry, 8,
                    img->header.refcount_table_offset + ti * 8) == -1) {
    if (!write_refused (img))
      zq_error ("%s: writing refcount table entry %" PRIu64 ": %m",
                img->filename, ti);
    errno = EIO;
    return -1;
  }
  return 0;
}

/* Clusters about to be allocated have refcount 0; if one of them is
 * metadata all the same, the refcounts are corrupt: handing it out would
 * overwrite that metadata.
 */
static int
refuse_metadata (struct zq_image *img, uint64_t offset, uint64_t nr_clusters)
{
  enum meta_kind kind;
  uint64_t at;

  if (overlap_find (img, META_NONE, offset, nr_clusters << img->cluster_bits,
                    &kind, &at))
    return image_corrupt (img, "refusing to allocate host cluster 0x%" PRIx64
                          ": its refcount is 0 but it holds %s", at,
                          meta_kind_name (kind));
  return 0;
}

/* Makes the dirty refcount blocks durable. */
static int
commit_blocks (struct zq_image *img)
{
  if (metacache_writeback (img->refblock_cache) == -1)
    return -1;
  return sync_file (img);
}

/* Creates the refcount block for table entry ti in the cluster `cluster`,
 * which ti covers, so that the block counts itself.
 */
static int
create_block (struct zq_image *img, uint64_t ti, uint64_t cluster)
{
  uint8_t *block;
  uint64_t offset = cluster << img->cluster_bits;

  if (refuse_metadata (img, offset, 1) == -1 ||
      overlap_add (img, META_REFCOUNT_BLOCK, offset, img->cluster_size) == -1)
    return -1;
  if (metacache_get_new (img->refblock_cache, offset, &block) == -1) {
    overlap_remove (img, META_REFCOUNT_BLOCK, offset, img->cluster_size);
    return -1;
  }
  refblock_entry_set (block, img->refcount_order,
                      block_index (img, cluster), 1);
  if (commit_blocks (img) == -1)
    goto fail;
  img->refcount_table[ti] = offset;
  if (refcount_write_table_entry (img, ti) == -1) {
    img->refcount_table[ti] = 0;
    goto fail;
  }
  return 0;

 fail:
  metacache_forget (img->refblock_cache, offset);
  overlap_remove (img, META_REFCOUNT_BLOCK, offset, img->cluster_size);
  return -1;
}

/* Grows the refcount table so that it has an entry for ti.
 *
 * The new table and the refcount blocks that cover it (and themselves)
 * are placed together past every allocated cluster, the way qemu lays
 * out a "refcount area".  Only after the blocks and the table are durable
 * does the header point at the new table; the old table is freed after
 * the next flush.
 */
static int
grow_table (struct zq_image *img, uint64_t ti)
{
  const uint64_t per_cluster = img->cluster_size / 8;
  uint64_t old_entries = img->refcount_table_entries;
  uint64_t new_entries, table_clusters, nr_blocks, area_start, area_end;
  uint64_t *new_table;
  uint64_t c, t;
  struct qcow2_header changed = img->header;
  uint8_t header_fields[QH_SERIALIZED_MAX];

  new_entries = old_entries * 2;
  if (new_entries <= ti)
    new_entries = ti + 1;

  for (;;) {
    new_entries = (new_entries + per_cluster - 1) / per_cluster * per_cluster;
    table_clusters = new_entries / per_cluster;
    if (table_clusters * img->cluster_size > QCOW2_MAX_REFTABLE_BYTES) {
      zq_error ("%s: the refcount table would exceed %u bytes",
                img->filename, QCOW2_MAX_REFTABLE_BYTES);
      errno = ENOSPC;
      return -1;
    }

    /* Find how many new blocks the area needs to cover itself, and move
     * it past any cluster in it that is already in use.
     */
    area_start = img->alloc_end;
    nr_blocks = 0;
    for (;;) {
      uint64_t needed = 0, in_use = 0;
      area_end = area_start + table_clusters + nr_blocks;
      for (t = area_start >> img->refblock_bits;
           t <= (area_end - 1) >> img->refblock_bits; t++)
        if (t >= old_entries || img->refcount_table[t] == 0)
          needed++;
      for (c = area_start; c < area_end && in_use == 0; c++) {
        uint64_t refcount;
        if (refcount_get (img, c, &refcount) == -1)
          return -1;
        if (refcount != 0)
          in_use = c + 1;
      }
      if (in_use) {
        area_start = in_use;
        continue;
      }
      if (needed == nr_blocks)
        break;
      nr_blocks = needed;
    }
    if (((area_end - 1) >> img->refblock_bits) < new_entries)
      break;
    new_entries = ((area_end - 1) >> img->refblock_bits) + 1;
  }

  if ((area_end << img->cluster_bits) > MAX_HOST_OFFSET) {
    zq_error ("%s: the image file would grow past qcow2's host offset "
              "limit", img->filename);
    errno = ENOSPC;
    return -1;
  }

  if (refuse_metadata (img, area_start << img->cluster_bits,
                       area_end - area_start) == -1)
    return -1;
  new_table = calloc (new_entries, sizeof *new_table);
  if (new_table == NULL)
    return -1;
  memcpy (new_table, img->refcount_table, old_entries * sizeof *new_table);
  if (overlap_add (img, META_REFCOUNT_TABLE, area_start << img->cluster_bits,
                   table_clusters << img->cluster_bits) == -1)
    goto fail;

  /* Blocks follow the table, one per uncovered table entry. */
  c = area_start + table_clusters;
  for (t = area_start >> img->refblock_bits;
       t <= (area_end - 1) >> img->refblock_bits; t++) {
    if (new_table[t] == 0) {
      uint8_t *block;
      new_table[t] = c << img->cluster_bits;
      if (overlap_add (img, META_REFCOUNT_BLOCK, new_table[t],
                       img->cluster_size) == -1 ||
          metacache_get_new (img->refblock_cache, new_table[t],
                             &block) == -1)
        goto fail;
      c++;
    }
  }

  /* Count every cluster of the area, in old blocks or new ones. */
  {
    uint64_t *saved_table = img->refcount_table;
    uint64_t saved_entries = img->refcount_table_entries;

    img->refcount_table = new_table;
    img->refcount_table_entries = new_entries;
    for (c = area_start; c < area_end; c++)
      if (refcount_update (img, c, 1) == -1) {
        img->refcount_table = saved_table;
        img->refcount_table_entries = saved_entries;
        goto fail;
      }
    img->refcount_table = saved_table;
    img->refcount_table_entries = saved_entries;
  }
  if (commit_blocks (img) == -1)
    goto fail;

  {
    size_t bytes = table_clusters * img->cluster_size;
    uint8_t *table_buf = calloc (1, bytes);
    uint64_t i;
    int r;

    if (table_buf == NULL)
      goto fail;
    for (i = 0; i < new_entries; i++)
      store_be64 (table_buf + i * 8, new_table[i]);
    r = image_pwrite (img, img->fd, META_REFCOUNT_TABLE, table_buf, bytes,
                      area_start << img->cluster_bits);
    free (table_buf);
    if (r == -1) {
      zq_error ("%s: writing the new refcount table: %m", img->filename);
      errno = EIO;
      goto fail;
    }
  }
  if (sync_file (img) == -1)
    goto fail;

  /* The table's offset and size, together: 12 bytes from offset 48. */
  changed.refcount_table_offset = area_start << img->cluster_bits;
  changed.refcount_table_clusters = (uint32_t) table_clusters;
  header_serialize (&changed, header_fields);
  if (image_pwrite (img, img->fd, META_HEADER,
                    header_fields + QH_REFCOUNT_TABLE_OFFSET,
                    QH_NB_SNAPSHOTS - QH_REFCOUNT_TABLE_OFFSET,
                    QH_REFCOUNT_TABLE_OFFSET) == -1) {
    zq_error ("%s: updating the header for the new refcount table: %m",
              img->filename);
    errno = EIO;
    goto fail;
  }
  if (sync_file (img) == -1)
    goto fail;

  overlap_remove (img, META_REFCOUNT_TABLE, img->header.refcount_table_offset,
                  (uint64_t) img->header.refcount_table_clusters
                  << img->cluster_bits);
  queue_free (img, img->header.refcount_table_offset,
              img->header.refcount_table_clusters);
  free (img->refcount_table);
  img->refcount_table = new_table;
  img->refcount_table_entries = new_entries;
  img->header.refcount_table_offset = area_start << img->cluster_bits;
  img->header.refcount_table_clusters = (uint32_t) table_clusters;
  img->alloc_end = area_end;
  zq_debug ("%s: refcount table grown to %" PRIu64 " entries at 0x%" PRIx64,
            img->filename, new_entries, area_start << img->cluster_bits);
  return 0;

 fail:
  /* The area's clusters may be counted in blocks already written; that
   * is a leak at worst, never a reference to a free cluster.  No table
   * points at its new blocks: they are no metadata.
   */
  for (t = area_start >> img->refblock_bits;
       t <= (area_end - 1) >> img->refblock_bits; t++)
    if (t >= old_entries || img->refcount_table[t] == 0) {
      if (new_table[t] != 0)
        metacache_forget (img->refblock_cache, new_table[t]);
    }
  overlap_remove (img, META_REFCOUNT_BLOCK, area_start << img->cluster_bits,
                  (area_end - area_start) << img->cluster_bits);
  overlap_remove (img, META_REFCOUNT_TABLE, area_start << img->cluster_bits,
                  (area_end - area_start) << img->cluster_bits);
  free (new_table);
  return -1;
}

int
refcount_alloc (struct zq_image *img, uint64_t want,
                uint64_t *host_offset, uint64_t *got)
{
  uint64_t cluster = img->free_cluster_hint;
  uint64_t run;
  uint8_t *block;
  bool missing;
  uint64_t value;

  /* Find the first free cluster, creating blocks as the scan needs them. */
  for (;;) {
    uint64_t ti = cluster >> img->refblock_bits;

    if ((cluster + 1) << img->cluster_bits > MAX_HOST_OFFSET) {
      zq_error ("%s: no free host cluster below qcow2's host offset limit",
                img->filename);
      errno = ENOSPC;
      return -1;
    }
    if (ti >= img->refcount_table_entries) {
      if (grow_table (img, ti) == -1)
        return -1;
      continue;                 /* the area may have taken this cluster */
    }
    if (get_block (img, cluster, &block, &missing) == -1)
      return -1;
    if (missing) {
      if (create_block (img, ti, cluster) == -1)
        return -1;
      if (cluster + 1 > img->alloc_end)
        img->alloc_end = cluster + 1;
      cluster++;
      continue;
    }
    value = refblock_entry_get (block, img->refcount_order,
                                block_index (img, cluster));
    if (value == 0)
      break;
    cluster++;
  }

  /* Extend the run while the next clusters are free too, stopping where
   * a new refcount block would be needed.
   */
  for (run = 1; run < want; run++) {
    uint64_t next = cluster + run;
    if ((next + 1) << img->cluster_bits > MAX_HOST_OFFSET)
      break;
    if (block_index (img, next) == 0) {
      if (get_block (img, next, &block, &missing) == -1)
        return -1;
      if (missing)
        break;
    }
    if (refblock_entry_get (block, img->refcount_order,
                            block_index (img, next)) != 0)
      break;
  }

  if (refuse_metadata (img, cluster << img->cluster_bits, run) == -1)
    return -1;
  for (uint64_t i = 0; i < run; i++)
    if (refcount_update (img, cluster + i, 1) == -1) {
      while (i-- > 0)
        refcount_update (img, cluster + i, -1);
      return -1;
    }

  img->free_cluster_hint = cluster + run;
  if (cluster + run > img->alloc_end)
    img->alloc_end = cluster + run;
  *host_offset = cluster << img->cluster_bits;
  *got = run;
  return 0;
}
