/* zq_check's walk over the tables that map the virtual disk: the
 * image's L1 table and its L2 tables, then each internal snapshot's.
 * Every table and every data or compressed cluster found counts as a
 * reference; entries are checked as qemu-img check checks them (reserved
 * bits, alignment, OFLAG_COPIED against the stored refcount), with its
 * wording.  The active tables also give the allocation and fragmentation
 * statistics.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "be.h"
#include "check-internal.h"
#include "qcow2-format.h"

/* L2 entry bits that must be zero in a standard (uncompressed) entry:
 * 1-8 and 56-61.  Bit 0 is the zero flag (reserved with extended L2).
 */
#define L2E_STD_RESERVED   0x3f000000000001feull

/* qemu's limits for the snapshot table. */
#define MAX_SNAPSHOTS       65536
#define MAX_SNAPSHOT_TABLE  (UINT64_C (64) << 20)

/* The stored refcount of the cluster at host offset, or false if unknown
 * (beyond the file, or its refcount block unreadable).
 */
static bool
stored_refcount (struct checker *c, uint64_t offset, uint64_t *refcount)
{
  uint64_t k = offset >> c->cluster_bits;

  if (k >= c->nb_clusters || c->refblock_unknown[k >> c->refblock_bits])
    return false;
  *refcount = c->refcounts[k];
  return true;
}

/* One L2 table.  `active`: it belongs to the image's own L1 table (not a
 * snapshot's), so OFLAG_COPIED and the allocation statistics apply.
 */
static void
check_l2 (struct checker *c, const uint8_t *l2, uint32_t l1_index,
          bool active)
{
  unsigned entry_bytes = c->extended_l2 ? 16 : 8;
  uint64_t nr_entries = c->cluster_size / entry_bytes, i;

  /* Fragmentation is counted within each L2 table, as qemu counts it. */
  c->next_contiguous_offset = 0;

  for (i = 0; i < nr_entries; i++) {
    uint64_t entry = load_be64 (l2 + i * entry_bytes);
    uint64_t bitmap = c->extended_l2 ? load_be64 (l2 + i * entry_bytes + 8)
                                     : 0;
    uint64_t offset, size, refcount;

    if (entry & QCOW2_OFLAG_COMPRESSED) {
      if (entry & QCOW2_OFLAG_COPIED)
        CORRUPTION ("ERROR: L1 index %" PRIu32 ", L2 index %" PRIu64
                    ": compressed cluster entry 0x%016" PRIx64 " has "
                    "OFLAG_COPIED set", l1_index, i, entry);
      entry &= ~QCOW2_OFLAG_COPIED;
      if (c->data_file) {
        CORRUPTION ("ERROR: L1 index %" PRIu32 ", L2 index %" PRIu64
                    ": compressed cluster in an image with an external "
                    "data file, entry 0x%016" PRIx64, l1_index, i, entry);
        continue;
      }
      if (bitmap) {
        CORRUPTION ("ERROR: L1 index %" PRIu32 ", L2 index %" PRIu64
                    ": compressed cluster with a non-zero subcluster "
                    "bitmap 0x%016" PRIx64, l1_index, i, bitmap);
        continue;
      }
      qcow2_compressed_extent (c->cluster_bits, entry, &offset, &size);
      check_inc_refs (c, "compressed cluster", offset, size);
      if (active) {
        c->res->allocated_clusters++;
        c->res->compressed_clusters++;
        /* Compressed clusters count as fragmented, as qemu counts them. */
        c->res->fragmented_clusters++;
      }
      continue;
    }

    offset = entry & QCOW2_L2E_OFFSET_MASK;
    if (entry & L2E_STD_RESERVED)
      CORRUPTION ("ERROR: L1 index %" PRIu32 ", L2 index %" PRIu64
                  ": L2 entry 0x%016" PRIx64 " has reserved bits set",
                  l1_index, i, entry);
    /* Unallocated, or zero without a cluster; but host offset 0 is a
     * cluster of a data file, told apart by OFLAG_COPIED as qemu does.
     */
    if (offset == 0 &&
        (!c->data_file || !(entry & QCOW2_OFLAG_COPIED) ||
         ((entry & QCOW2_OFLAG_ZERO) && !c->extended_l2)))
      continue;

    /* A normal cluster, or a zero cluster that keeps its host cluster. */
    if ((bitmap >> 32) & bitmap)
      CORRUPTION ("ERROR offset=%" PRIx64 ": allocated cluster has a "
                  "corrupted subcluster allocation bitmap 0x%016" PRIx64,
                  offset, bitmap);
    if (offset & (c->cluster_size - 1)) {
      CORRUPTION ("ERROR offset=%" PRIx64 ": %s cluster is not properly "
                  "aligned; L2 entry corrupted", offset,
                  (entry & QCOW2_OFLAG_ZERO) && !c->extended_l2 ?
                  "Preallocated zero" : "Data");
      continue;
    }
    if (active) {
      c->res->allocated_clusters++;
      if (c->next_contiguous_offset &&
          offset != c->next_contiguous_offset)
        c->res->fragmented_clusters++;
      c->next_contiguous_offset = offset + c->cluster_size;
    }
    if (c->data_file)
      continue;                 /* the data lives in the other file */
    check_inc_refs (c, "data cluster", offset, c->cluster_size);
    if (active && !c->rebuilding && stored_refcount (c, offset, &refcount) &&
        (refcount == 1) != ((entry & QCOW2_OFLAG_COPIED) != 0))
      CORRUPTION ("ERROR OFLAG_COPIED data cluster: l2_entry=%" PRIx64
                  " refcount=%" PRIu64, entry, refcount);
  }
}

/* One L1 table and every L2 table it points at. */
int
check_l1 (struct checker *c, const char *what, uint64_t l1_offset,
          uint32_t l1_size, bool active)
{
  uint64_t cs = c->cluster_size, l1_bytes = (uint64_t) l1_size * 8, i;
  uint8_t *l1, *l2;
  int r = 0;

  if (l1_size == 0)
    return 0;
  check_inc_refs (c, what, l1_offset, l1_bytes);
  if ((l1_offset >> c->cluster_bits) >= c->nb_clusters ||
      ((l1_offset + l1_bytes - 1) >> c->cluster_bits) >= c->nb_clusters)
    return 0;                   /* reported by check_inc_refs */

  l1 = malloc (l1_bytes);
  l2 = malloc (cs);
  if (l1 == NULL || l2 == NULL) {
    free (l1);
    free (l2);
    errno = ENOMEM;
    return -1;
  }
  if (check_read_at (c, what, l1, l1_bytes, l1_offset) == -1)
    goto out;

  for (i = 0; i < l1_size; i++) {
    uint64_t entry = load_be64 (l1 + i * 8);
    uint64_t l2_offset = entry & QCOW2_L1E_OFFSET_MASK, refcount;

    if (entry & QCOW2_L1E_RESERVED)
      CORRUPTION ("ERROR: %s entry %" PRIu64 " (0x%016" PRIx64 ") has "
                  "reserved bits set", what, i, entry);
    if (l2_offset == 0)
      continue;
    if (l2_offset & (cs - 1)) {
      CORRUPTION ("ERROR l2_offset=%" PRIx64 ": Table is not cluster "
                  "aligned; L1 entry corrupted", l2_offset);
      continue;
    }
    if ((l2_offset >> c->cluster_bits) >= c->nb_clusters) {
      CORRUPTION ("ERROR l2_offset=%" PRIx64 ": L2 table is beyond the end "
                  "of the file (%" PRIu64 " bytes); L1 entry corrupted",
                  l2_offset, c->f.file_size);
      continue;
    }
    check_inc_refs (c, "L2 table", l2_offset, cs);
    if (active && !c->rebuilding &&
        stored_refcount (c, l2_offset, &refcount) &&
        (refcount == 1) != ((entry & QCOW2_OFLAG_COPIED) != 0))
      CORRUPTION ("ERROR OFLAG_COPIED L2 cluster: l1_index=%" PRIu64
                  " l1_entry=%" PRIx64 " refcount=%" PRIu64,
                  i, entry, refcount);
    if (check_read_at (c, "L2 table", l2, cs, l2_offset) == -1)
      continue;
    check_l2 (c, l2, i, active);
  }

 out:
  free (l1);
  free (l2);
  return r;
}

/* Internal snapshots: the table, and each snapshot's L1 and L2 tables. */
int
check_snapshots (struct checker *c)
{
  const struct qcow2_header *h = &c->f.h;
  uint64_t pos = h->snapshots_offset, table_bytes = 0;
  uint8_t fixed[40];
  uint32_t i;

  if (h->nb_snapshots == 0)
    return 0;
  if (h->nb_snapshots > MAX_SNAPSHOTS) {
    CORRUPTION ("ERROR: %" PRIu32 " snapshots, more than %d; snapshots "
                "not checked", h->nb_snapshots, MAX_SNAPSHOTS);
    return 0;
  }

  for (i = 0; i < h->nb_snapshots; i++) {
    uint64_t l1_offset, entry_bytes;
    uint32_t l1_size, extra;
    uint16_t id_len, name_len;
    char what[64];

    if (pos >= c->f.file_size || c->f.file_size - pos < sizeof fixed) {
      CORRUPTION ("ERROR: snapshot %" PRIu32 " of the snapshot table at "
                  "offset 0x%" PRIx64 " is beyond the end of the file",
                  i, pos);
      return 0;
    }
    if (check_read_at (c, "snapshot table", fixed, sizeof fixed,
                       pos) == -1)
      return 0;
    l1_offset = load_be64 (fixed);
    l1_size = load_be32 (fixed + 8);
    id_len = load_be16 (fixed + 12);
    name_len = load_be16 (fixed + 14);
    extra = load_be32 (fixed + 36);
    entry_bytes = (sizeof fixed + (uint64_t) extra + id_len + name_len + 7)
                  & ~UINT64_C (7);
    table_bytes += entry_bytes;
    pos += entry_bytes;
    /* Version 3 entries carry at least vm_state_size_large and disk_size
     * (16 bytes of extra data); qemu-img check counts a shorter one.
     */
    if (h->version >= 3 && extra < 16)
      CORRUPTION ("ERROR snapshot table entry %" PRIu32 " is incomplete", i);
    if (table_bytes > MAX_SNAPSHOT_TABLE) {
      CORRUPTION ("ERROR: the snapshot table is larger than %" PRIu64
                  " bytes; snapshots not checked", MAX_SNAPSHOT_TABLE);
      return 0;
    }

    snprintf (what, sizeof what, "L1 table of snapshot %" PRIu32, i);
    if (l1_offset & (c->cluster_size - 1)) {
      CORRUPTION ("ERROR: snapshot %" PRIu32 ": L1 table offset 0x%"
                  PRIx64 " is not cluster aligned", i, l1_offset);
      continue;
    }
    if ((uint64_t) l1_size * 8 > QCOW2_MAX_L1_BYTES) {
      CORRUPTION ("ERROR: snapshot %" PRIu32 ": L1 table of %" PRIu32
                  " entries is too large", i, l1_size);
      continue;
    }
    if (check_l1 (c, what, l1_offset, l1_size, false) == -1)
      return -1;
  }
  check_inc_refs (c, "snapshot table", h->snapshots_offset,
                  table_bytes);
  return 0;
}
