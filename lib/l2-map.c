/* Guest offset to host cluster through the L1 and L2 tables. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>

#include "be.h"
#include "internal.h"
#include "l2-cow.h"
#include "l2-map.h"
#include "refcount.h"
#include "subcluster.h"

int
map_decode_entry (struct zq_image *img, uint64_t guest_offset,
                  uint64_t entry, enum cluster_type *type,
                  uint64_t *host_offset)
{
  uint64_t host;
  bool zero;

  if (entry & QCOW2_OFLAG_COMPRESSED) {
    *type = CLUSTER_COMPRESSED;
    *host_offset = 0;
    return 0;
  }
  host = entry & QCOW2_L2E_OFFSET_MASK;
  zero = img->header.version >= 3 && (entry & QCOW2_OFLAG_ZERO);
  if ((host & (img->cluster_size - 1)) != 0)
    return image_corrupt (img, "L2 entry for guest offset 0x%" PRIx64
                          " points at unaligned host offset 0x%" PRIx64,
                          guest_offset, host);
  /* Past every cluster the file has or this process allocated: a write
   * there would grow the file to follow a corrupt entry.  (A data file's
   * offsets are guest offsets, bounded by the virtual size.)
   */
  if (!has_data_file (img) && host != 0 &&
      (host >> img->cluster_bits) >= img->alloc_end)
    return image_corrupt (img, "L2 entry for guest offset 0x%" PRIx64
                          " points at host offset 0x%" PRIx64 ", beyond "
                          "the end of the file (0x%" PRIx64 ")",
                          guest_offset, host,
                          img->alloc_end << img->cluster_bits);
  if (zero)
    *type = host ? CLUSTER_ZERO_ALLOC : CLUSTER_ZERO_PLAIN;
  else
    *type = host ? CLUSTER_NORMAL : CLUSTER_UNALLOCATED;
  /* Host offset 0 is valid in a data file; as in qemu, OFLAG_COPIED
   * (every data file cluster has it) tells it from unallocated.
   */
  if (*type == CLUSTER_UNALLOCATED && has_data_file (img) &&
      (entry & QCOW2_OFLAG_COPIED))
    *type = CLUSTER_NORMAL;
  *host_offset = host;
  return 0;
}

static int
l1_entry_offset (struct zq_image *img, uint64_t offset, uint64_t *l2_offset,
                 uint64_t *l1_index)
{
  uint64_t i = offset >> (img->l2_bits + img->cluster_bits);
  uint64_t l2_off;

  if (i >= img->l1_size) {
    zq_error ("%s: guest offset 0x%" PRIx64 " is beyond the L1 table",
              img->filename, offset);
    errno = EIO;
    return -1;
  }
  l2_off = img->l1_table[i] & QCOW2_L1E_OFFSET_MASK;
  if ((l2_off & (img->cluster_size - 1)) != 0)
    return image_corrupt (img, "L1 entry %" PRIu64 " points at unaligned "
                          "offset 0x%" PRIx64, i, l2_off);
  /* Every L2 table the L1 table may use was recorded at open or when it
   * was allocated: one beyond the end of the file, or on other metadata,
   * is not followed (its writeback would grow the file or destroy that).
   */
  if (l2_off != 0 && !overlap_l1_entry_valid (img, i)) {
    char where[64];
    return image_corrupt (img, "L1 entry %" PRIu64 " points at 0x%" PRIx64
                          ", %s, not at an L2 table", i, l2_off,
                          overlap_where (img, l2_off, where, sizeof where));
  }
  *l2_offset = l2_off;
  *l1_index = i;
  return 0;
}

static uint64_t
l2_index_of (const struct zq_image *img, uint64_t offset)
{
  return (offset >> img->cluster_bits) &
         ((UINT64_C (1) << img->l2_bits) - 1);
}

int
map_lookup (struct zq_image *img, uint64_t offset, uint64_t max_bytes,
            struct map_run *run)
{
  uint64_t l2_offset, l1_index, i, n, entries = UINT64_C (1) << img->l2_bits;
  uint64_t in_cluster = offset_into_cluster (img, offset);
  uint64_t first_entry, host;
  uint8_t *table;

  if (img->extended_l2)
    return subcluster_lookup (img, offset, max_bytes, run);
  if (l1_entry_offset (img, offset, &l2_offset, &l1_index) == -1)
    return -1;

  i = l2_index_of (img, offset);
  if (l2_offset == 0) {
    run->type = CLUSTER_UNALLOCATED;
    run->host_offset = 0;
    run->copied = false;
    run->compressed_entry = 0;
    n = entries - i;
  }
  else {
    if (metacache_get (img->l2_cache, l2_offset, &table) == -1)
      return -1;
    first_entry = load_be64 (table + i * 8);
    if (map_decode_entry (img, cluster_floor (img, offset), first_entry,
                          &run->type, &host) == -1)
      return -1;
    run->host_offset = host || run->type == CLUSTER_NORMAL
                       ? host + in_cluster : 0;
    run->copied = (first_entry & QCOW2_OFLAG_COPIED) != 0;
    run->compressed_entry = run->type == CLUSTER_COMPRESSED ? first_entry : 0;

    /* Compressed clusters are handled one at a time. */
    for (n = 1; i + n < entries && run->type != CLUSTER_COMPRESSED &&
           (n << img->cluster_bits) - in_cluster < max_bytes; n++) {
      uint64_t entry = load_be64 (table + (i + n) * 8);
      enum cluster_type type;
      uint64_t next_host;

      if (map_decode_entry (img, cluster_floor (img, offset) +
                            (n << img->cluster_bits), entry,
                            &type, &next_host) == -1)
        return -1;
      if (type != run->type ||
          ((entry & QCOW2_OFLAG_COPIED) != 0) != run->copied ||
          ((host || type == CLUSTER_NORMAL) &&
           next_host != host + (n << img->cluster_bits)))
        break;
    }
  }

  run->bytes = (n << img->cluster_bits) - in_cluster;
  if (run->bytes > max_bytes)
    run->bytes = max_bytes;
  return 0;
}

void
map_lock (struct zq_image *img, uint64_t offset)
{
  uint64_t i = offset >> (img->l2_bits + img->cluster_bits);

  pthread_mutex_lock (&img->meta_lock);
  /* Beyond the L1 table, the section itself fails. */
  if (i < img->l1_size)
    metacache_make_room (img->l2_cache,
                         img->l1_table[i] & QCOW2_L1E_OFFSET_MASK);
}

int
map_lookup_run (struct zq_image *img, uint64_t offset, uint64_t max_bytes,
                struct map_run *run)
{
  int r;

  map_lock (img, offset);
  r = map_lookup (img, offset, max_bytes, run);
  pthread_mutex_unlock (&img->meta_lock);
  return r;
}

int
map_l2_existing (struct zq_image *img, uint64_t offset,
                 uint8_t **l2_table, uint64_t *l2_index)
{
  uint64_t l2_offset, l1_index;

  if (l1_entry_offset (img, offset, &l2_offset, &l1_index) == -1)
    return -1;
  *l2_index = l2_index_of (img, offset);
  if (l2_offset == 0) {
    *l2_table = NULL;
    return 0;
  }
  return metacache_get (img->l2_cache, l2_offset, l2_table);
}

int
map_l2_existing_for_update (struct zq_image *img, uint64_t offset,
                            uint8_t **l2_table, uint64_t *l2_index)
{
  uint64_t l2_offset, l1_index;

  if (l1_entry_offset (img, offset, &l2_offset, &l1_index) == -1)
    return -1;
  if (l2_offset != 0 && !(img->l1_table[l1_index] & QCOW2_OFLAG_COPIED)) {
    *l2_index = l2_index_of (img, offset);
    return l2_copy_on_write (img, l1_index, l2_table);
  }
  return map_l2_existing (img, offset, l2_table, l2_index);
}

int
map_l2_for_update (struct zq_image *img, uint64_t offset,
                   uint8_t **l2_table, uint64_t *l2_index)
{
  uint64_t l2_offset, l1_index, got;

  if (l1_entry_offset (img, offset, &l2_offset, &l1_index) == -1)
    return -1;
  *l2_index = l2_index_of (img, offset);

  if (l2_offset != 0) {
    if (!(img->l1_table[l1_index] & QCOW2_OFLAG_COPIED))
      return l2_copy_on_write (img, l1_index, l2_table);
    return metacache_get (img->l2_cache, l2_offset, l2_table);
  }

  /* A new, empty L2 table.  The L1 entry pointing at it is written only
   * after the table itself is durable (flush.c).
   */
  if (refcount_alloc (img, 1, &l2_offset, &got) == -1)
    return -1;
  if (overlap_add (img, META_L2, l2_offset, img->cluster_size) == -1 ||
      metacache_get_new (img->l2_cache, l2_offset, l2_table) == -1) {
    overlap_remove (img, META_L2, l2_offset, img->cluster_size);
    refcount_update (img, l2_offset >> img->cluster_bits, -1);
    return -1;
  }
  img->l1_table[l1_index] = l2_offset | QCOW2_OFLAG_COPIED;
  l1_mark_dirty (img, l1_index, l1_index + 1);
  return 0;
}
