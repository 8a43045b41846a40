/* Looking at an image offline, without serving it: zq_info (zqcow2-img
 * info) and zq_check (zqcow2-img check).
 *
 * Both open the file read-only and never write a byte.  Neither goes
 * through zq_open: they must work on images the engine would refuse
 * (compressed with zstd, dirty, marked corrupt, with a broken zoned
 * extension), since those are the images one wants to look at.
 *
 * The check rebuilds every host cluster's reference count from the
 * metadata, the way qemu-img check does, and compares it with the stored
 * refcounts: a stored refcount lower than the references is a corruption
 * (the cluster may be handed out again while in use), a higher one is a
 * leak (wasted space, no harm to data).  Its messages follow qemu-img
 * check's wording, prefixed with the file name.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "be.h"
#include "internal.h"
#include "qcow2-format.h"
#include "refcount.h"
#include "zoned-format.h"

/* Incompatible features whose on-disk effects the check understands. */
#define CHECK_KNOWN_INCOMPATIBLE \
  (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | \
   QCOW2_INCOMPAT_DATA_FILE | QCOW2_INCOMPAT_COMPRESSION | \
   QCOW2_INCOMPAT_EXTL2 | QCOW2_INCOMPAT_ZONED)

/* L2 entry bits that must be zero in a standard (uncompressed) entry:
 * 1-8 and 56-61.  Bit 0 is the zero flag (reserved with extended L2).
 */
#define L2E_STD_RESERVED   0x3f000000000001feull

/* qemu's limits for the snapshot table. */
#define MAX_SNAPSHOTS       65536
#define MAX_SNAPSHOT_TABLE  (UINT64_C (64) << 20)

/* An opened image: its header and the first cluster it came from. */
struct image_file {
  const char *filename;
  int fd;
  uint64_t file_size;
  uint64_t disk_size;           /* bytes allocated to the file */
  uint8_t *first_cluster;       /* header and extensions */
  size_t first_len;
  struct qcow2_header h;
  uint64_t cluster_size;
};

static void
image_file_close (struct image_file *f)
{
  header_free (&f->h);
  free (f->first_cluster);
  if (f->fd >= 0)
    close (f->fd);
  f->fd = -1;
  f->first_cluster = NULL;
}

/* Opens read-only and parses the header.  Logs and fails on anything that
 * makes the rest of the file uninterpretable.
 */
static int
image_file_open (struct image_file *f, const char *filename)
{
  uint8_t first[QH_V3_LENGTH];
  struct stat st;
  char why[512];
  int saved_errno;

  memset (f, 0, sizeof *f);
  f->filename = filename;
  f->fd = open (filename, O_RDONLY | O_CLOEXEC);
  if (f->fd == -1) {
    saved_errno = errno;
    zq_error ("%s: %s", filename, strerror (saved_errno));
    errno = saved_errno;
    return -1;
  }
  if (fstat (f->fd, &st) == -1 ||
      full_pread (f->fd, first, sizeof first, 0) == -1)
    goto io_error;
  f->file_size = st.st_size;
  f->disk_size = (uint64_t) st.st_blocks * 512;
  f->first_len = header_bytes_needed (first, sizeof first);
  f->first_cluster = malloc (f->first_len);
  if (f->first_cluster == NULL)
    goto io_error;
  if (full_pread (f->fd, f->first_cluster, f->first_len, 0) == -1)
    goto io_error;
  if (header_parse (f->first_cluster, f->first_len, f->file_size, &f->h,
                    why, sizeof why) == -1) {
    saved_errno = errno;
    zq_error ("%s: %s", filename, why);
    image_file_close (f);
    errno = saved_errno;
    return -1;
  }
  f->cluster_size = UINT64_C (1) << f->h.cluster_bits;
  return 0;

 io_error:
  saved_errno = errno;
  zq_error ("%s: reading the header: %s", filename, strerror (saved_errno));
  image_file_close (f);
  errno = saved_errno;
  return -1;
}

/* The payload of header extension `magic`, or NULL. */
static const uint8_t *
find_extension (const struct image_file *f, uint32_t magic, uint32_t *len)
{
  size_t pos = f->h.version == 2 ? QH_V2_LENGTH : f->h.header_length;
  size_t end = f->first_len < f->cluster_size ? f->first_len
                                              : f->cluster_size;

  while (pos + 8 <= end) {
    uint32_t m = load_be32 (f->first_cluster + pos);
    uint32_t l = load_be32 (f->first_cluster + pos + 4);

    if (m == QCOW2_EXT_END || l > end - pos - 8)
      return NULL;
    if (m == magic) {
      *len = l;
      return f->first_cluster + pos + 8;
    }
    pos += 8 + (((uint64_t) l + 7) & ~(uint64_t) 7);
  }
  return NULL;
}

/* ------------------------------------------------------------------ */
/* zq_info */

int
zq_info (const char *filename, struct zq_info *info)
{
  struct image_file f;
  const struct qcow2_header *h = &f.h;
  char why[512];

  memset (info, 0, sizeof *info);
  if (image_file_open (&f, filename) == -1)
    return -1;

  info->version = h->version;
  info->virtual_size = h->size;
  info->cluster_size = f.cluster_size;
  info->refcount_bits = 1u << h->refcount_order;
  info->incompatible_features = h->incompatible_features;
  info->compatible_features = h->compatible_features;
  info->autoclear_features = h->autoclear_features;
  info->lazy_refcounts =
    (h->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS) != 0;
  info->compression_type = h->compression_type;
  info->dirty = (h->incompatible_features & QCOW2_INCOMPAT_DIRTY) != 0;
  info->corrupt = (h->incompatible_features & QCOW2_INCOMPAT_CORRUPT) != 0;
  info->extended_l2 = (h->incompatible_features & QCOW2_INCOMPAT_EXTL2) != 0;
  info->data_file = (h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE) != 0;
  info->nr_snapshots = h->nb_snapshots;
  info->file_size = f.file_size;
  info->disk_size = f.disk_size;
  if (h->backing_file_offset != 0)
    memcpy (info->backing_file, h->backing_file, sizeof info->backing_file);
  memcpy (info->backing_format, h->backing_format,
          sizeof info->backing_format);
  if (h->data_file_name)
    snprintf (info->data_file_name, sizeof info->data_file_name, "%s",
              h->data_file_name);
  info->data_file_raw = info->data_file &&
    (h->autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW) != 0;

  /* A zoned image carries the bit and the extension together.  A broken
   * geometry is still shown as found, with a warning: check says more.
   */
  if ((h->incompatible_features & QCOW2_INCOMPAT_ZONED) && h->has_zoned &&
      zoned_ext_parse (h->zoned_payload, h->zoned_payload_len,
                       &info->geometry, why, sizeof why) == 0) {
    info->zoned = true;
    if (zone_geometry_check (&info->geometry, h->size, f.cluster_size,
                             true, why, sizeof why) == -1)
      zq_warning ("%s: invalid zoned geometry: %s", filename, why);
  }
  else if ((h->incompatible_features & QCOW2_INCOMPAT_ZONED) ||
           h->has_zoned)
    zq_warning ("%s: the zoned format bit and the zoned extension do not "
                "agree, or the extension is invalid; "
                "run 'zqcow2-img check'", filename);

  image_file_close (&f);
  return 0;
}

/* ------------------------------------------------------------------ */
/* zq_check */

struct checker {
  struct image_file f;
  struct zq_check_result *res;
  uint64_t cluster_size;
  unsigned cluster_bits;
  uint64_t nb_clusters;         /* host clusters the file covers */

  /* Rebuilt references, saturating, and stored refcounts, per host
   * cluster.  A refcount block that could not be read leaves its clusters
   * unknown (no comparison).
   */
  uint32_t *references;
  uint64_t *refcounts;
  bool *refblock_unknown;       /* per refcount table entry */
  uint64_t refcount_table_entries;
  unsigned refblock_bits;
  uint64_t refcount_max;

  bool extended_l2;
  bool data_file;
  uint64_t next_contiguous_offset;

  /* Counting references for a repair (repair.c): the stored refcounts
   * are known to be stale, so OFLAG_COPIED is not checked against them.
   */
  bool rebuilding;
};

/* One problem: "FILE: sentence", counted in c->res->counter. */
#define PROBLEM(counter, ...)                                   \
  do {                                                          \
    zq_file_error (c->f.filename, __VA_ARGS__);                 \
    c->res->counter++;                                          \
  } while (0)
#define CORRUPTION(...) PROBLEM (corruptions, __VA_ARGS__)
#define WP_ERROR(...) PROBLEM (wp_errors, __VA_ARGS__)
#define CHECK_ERROR(...) PROBLEM (check_errors, __VA_ARGS__)

/* Counts one reference to every cluster of [offset, offset + size). */
static void
inc_refs (struct checker *c, const char *what, uint64_t offset,
          uint64_t size)
{
  uint64_t first, last, k;

  if (size == 0)
    return;
  first = offset >> c->cluster_bits;
  last = offset + size - 1 < offset ? UINT64_MAX
                                     : (offset + size - 1) >> c->cluster_bits;
  if (last >= c->nb_clusters) {
    CORRUPTION ("ERROR: %s at offset 0x%" PRIx64 " (size 0x%" PRIx64
                ") is beyond the end of the file (%" PRIu64 " bytes)",
                what, offset, size, c->f.file_size);
    return;
  }
  for (k = first; k <= last; k++)
    if (c->references[k] < UINT32_MAX)
      c->references[k]++;
}

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

static int
read_at (struct checker *c, const char *what, void *buf, size_t len,
         uint64_t offset)
{
  if (full_pread (c->f.fd, buf, len, offset) == -1) {
    CHECK_ERROR ("ERROR: reading the %s at offset 0x%" PRIx64 ": %s",
                 what, offset, strerror (errno));
    return -1;
  }
  return 0;
}

/* The refcount table and blocks: counts their clusters and loads the
 * stored refcounts.
 */
static int
load_refcounts (struct checker *c)
{
  const struct qcow2_header *h = &c->f.h;
  uint64_t cs = c->cluster_size, i, j;
  uint64_t reftable_bytes = (uint64_t) h->refcount_table_clusters * cs;
  uint64_t per_block = UINT64_C (1) << c->refblock_bits;
  uint8_t *reftable, *block;

  c->refcount_table_entries = reftable_bytes / 8;
  /* One flag per table entry, plus those covering clusters past it. */
  c->refblock_unknown = calloc ((c->nb_clusters >> c->refblock_bits) + 1 +
                                c->refcount_table_entries, sizeof (bool));
  reftable = malloc (reftable_bytes);
  block = malloc (cs);
  if (c->refblock_unknown == NULL || reftable == NULL || block == NULL) {
    free (reftable);
    free (block);
    errno = ENOMEM;
    return -1;
  }

  inc_refs (c, "refcount table", h->refcount_table_offset, reftable_bytes);
  if (read_at (c, "refcount table", reftable, reftable_bytes,
               h->refcount_table_offset) == -1) {
    for (i = 0; i <= c->nb_clusters >> c->refblock_bits; i++)
      c->refblock_unknown[i] = true;
    goto out;
  }

  for (i = 0; i < c->refcount_table_entries; i++) {
    uint64_t entry = load_be64 (reftable + i * 8);
    uint64_t offset = entry & QCOW2_REFT_OFFSET_MASK;
    uint64_t first = i << c->refblock_bits;

    if (entry & ~QCOW2_REFT_OFFSET_MASK)
      CORRUPTION ("ERROR refcount table entry %" PRIu64 " (0x%016" PRIx64
                  ") has reserved bits 0-8 set", i, entry);
    if (offset == 0)
      continue;                 /* no block: those clusters are free */
    if (offset & (cs - 1)) {
      CORRUPTION ("ERROR refcount block %" PRIu64 " at offset 0x%" PRIx64
                  " is not cluster aligned; refcount table entry corrupted",
                  i, offset);
      c->refblock_unknown[i] = true;
      continue;
    }
    if ((offset >> c->cluster_bits) >= c->nb_clusters) {
      CORRUPTION ("ERROR refcount block %" PRIu64 " at offset 0x%" PRIx64
                  " is outside the image (%" PRIu64 " bytes)",
                  i, offset, c->f.file_size);
      c->refblock_unknown[i] = true;
      continue;
    }
    inc_refs (c, "refcount block", offset, cs);
    if (first >= c->nb_clusters)
      continue;                 /* covers only clusters past the file */
    if (read_at (c, "refcount block", block, cs, offset) == -1) {
      c->refblock_unknown[i] = true;
      continue;
    }
    for (j = 0; j < per_block && first + j < c->nb_clusters; j++)
      c->refcounts[first + j] =
        refblock_entry_get (block, h->refcount_order, j);
  }

 out:
  free (reftable);
  free (block);
  return 0;
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
      inc_refs (c, "compressed cluster", offset, size);
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
    inc_refs (c, "data cluster", offset, c->cluster_size);
    if (active && !c->rebuilding && stored_refcount (c, offset, &refcount) &&
        (refcount == 1) != ((entry & QCOW2_OFLAG_COPIED) != 0))
      CORRUPTION ("ERROR OFLAG_COPIED data cluster: l2_entry=%" PRIx64
                  " refcount=%" PRIu64, entry, refcount);
  }
}

/* One L1 table and every L2 table it points at. */
static int
check_l1 (struct checker *c, const char *what, uint64_t l1_offset,
          uint32_t l1_size, bool active)
{
  uint64_t cs = c->cluster_size, l1_bytes = (uint64_t) l1_size * 8, i;
  uint8_t *l1, *l2;
  int r = 0;

  if (l1_size == 0)
    return 0;
  inc_refs (c, what, l1_offset, l1_bytes);
  if ((l1_offset >> c->cluster_bits) >= c->nb_clusters ||
      ((l1_offset + l1_bytes - 1) >> c->cluster_bits) >= c->nb_clusters)
    return 0;                   /* reported by inc_refs */

  l1 = malloc (l1_bytes);
  l2 = malloc (cs);
  if (l1 == NULL || l2 == NULL) {
    free (l1);
    free (l2);
    errno = ENOMEM;
    return -1;
  }
  if (read_at (c, what, l1, l1_bytes, l1_offset) == -1)
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
    inc_refs (c, "L2 table", l2_offset, cs);
    if (active && !c->rebuilding &&
        stored_refcount (c, l2_offset, &refcount) &&
        (refcount == 1) != ((entry & QCOW2_OFLAG_COPIED) != 0))
      CORRUPTION ("ERROR OFLAG_COPIED L2 cluster: l1_index=%" PRIu64
                  " l1_entry=%" PRIx64 " refcount=%" PRIu64,
                  i, entry, refcount);
    if (read_at (c, "L2 table", l2, cs, l2_offset) == -1)
      continue;
    check_l2 (c, l2, i, active);
  }

 out:
  free (l1);
  free (l2);
  return r;
}

/* Internal snapshots: the table, and each snapshot's L1 and L2 tables. */
static int
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
    if (read_at (c, "snapshot table", fixed, sizeof fixed, pos) == -1)
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
  inc_refs (c, "snapshot table", h->snapshots_offset, table_bytes);
  return 0;
}

/* Persistent dirty bitmaps: their directory and tables and the clusters
 * those point at.  Only when the autoclear bit says the extension is
 * current (otherwise a reader ignores it and its clusters are leaks).
 */
static int
check_bitmaps (struct checker *c)
{
  const uint8_t *ext;
  uint32_t ext_len, nb_bitmaps, i;
  uint64_t dir_size, dir_offset, pos;
  uint8_t *dir = NULL, *table = NULL;

  if (!(c->f.h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS))
    return 0;
  ext = find_extension (&c->f, QCOW2_EXT_BITMAPS, &ext_len);
  if (ext == NULL)
    return 0;
  if (ext_len < 24) {
    CORRUPTION ("ERROR: the bitmaps extension is %" PRIu32 " bytes, "
                "shorter than 24", ext_len);
    return 0;
  }
  nb_bitmaps = load_be32 (ext);
  dir_size = load_be64 (ext + 8);
  dir_offset = load_be64 (ext + 16);
  if (nb_bitmaps == 0)
    return 0;
  if (dir_size > (UINT64_C (64) << 20) || (dir_offset & (c->cluster_size - 1))) {
    CORRUPTION ("ERROR: the bitmap directory (offset 0x%" PRIx64 ", %"
                PRIu64 " bytes) is unaligned or too large",
                dir_offset, dir_size);
    return 0;
  }
  inc_refs (c, "bitmap directory", dir_offset, dir_size);
  if (((dir_offset + dir_size - 1) >> c->cluster_bits) >= c->nb_clusters)
    return 0;
  dir = malloc (dir_size ? dir_size : 1);
  if (dir == NULL) {
    errno = ENOMEM;
    return -1;
  }
  if (read_at (c, "bitmap directory", dir, dir_size, dir_offset) == -1)
    goto out;

  for (pos = 0, i = 0; i < nb_bitmaps; i++) {
    uint64_t table_offset, j;
    uint32_t table_size, extra;
    uint16_t name_len;

    if (pos + 24 > dir_size) {
      CORRUPTION ("ERROR: bitmap %" PRIu32 " runs past the bitmap "
                  "directory", i);
      break;
    }
    table_offset = load_be64 (dir + pos);
    table_size = load_be32 (dir + pos + 8);
    name_len = load_be16 (dir + pos + 18);
    extra = load_be32 (dir + pos + 20);
    pos += (24 + (uint64_t) extra + name_len + 7) & ~UINT64_C (7);

    if (table_offset & (c->cluster_size - 1) ||
        (uint64_t) table_size * 8 > (UINT64_C (64) << 20)) {
      CORRUPTION ("ERROR: bitmap %" PRIu32 ": table at offset 0x%" PRIx64
                  " (%" PRIu32 " entries) is unaligned or too large",
                  i, table_offset, table_size);
      continue;
    }
    inc_refs (c, "bitmap table", table_offset, (uint64_t) table_size * 8);
    if (table_size == 0 ||
        ((table_offset + table_size * UINT64_C (8) - 1) >> c->cluster_bits)
        >= c->nb_clusters)
      continue;
    free (table);
    table = malloc ((uint64_t) table_size * 8);
    if (table == NULL) {
      free (dir);
      errno = ENOMEM;
      return -1;
    }
    if (read_at (c, "bitmap table", table, (uint64_t) table_size * 8,
                 table_offset) == -1)
      continue;
    for (j = 0; j < table_size; j++) {
      uint64_t data = load_be64 (table + j * 8) & QCOW2_L2E_OFFSET_MASK;
      if (data == 0)
        continue;
      if (data & (c->cluster_size - 1))
        CORRUPTION ("ERROR: bitmap %" PRIu32 ": data cluster offset 0x%"
                    PRIx64 " is not cluster aligned", i, data);
      else
        inc_refs (c, "bitmap data cluster", data, c->cluster_size);
    }
  }
 out:
  free (dir);
  free (table);
  return 0;
}

/* Reads entries [first, first + n) of the write-pointer table. */
static int
read_wp_entries (struct checker *c, const struct zq_zone_geometry *g,
                 uint8_t *buf, uint32_t first, uint32_t n)
{
  return read_at (c, "write-pointer table", buf, (size_t) n * 8,
                  g->zonedmeta_offset + (uint64_t) first * 8);
}

#define WP_CHUNK 8192           /* entries read at a time */

/* The zoned extension, its geometry and every write-pointer entry. */
static int
check_zoned (struct checker *c)
{
  const struct qcow2_header *h = &c->f.h;
  bool bit = (h->incompatible_features & QCOW2_INCOMPAT_ZONED) != 0;
  struct zq_zone_geometry g;
  uint64_t be_bad = 0, le_bad = 0, wp;
  enum zq_zone_cond cond;
  uint8_t *buf;
  uint32_t i, n;
  char why[512];
  bool little_endian;

  if (!bit && !h->has_zoned)
    return 0;
  if (bit && !h->has_zoned) {
    WP_ERROR ("ERROR: incompatible bit 5 (zoned format) is set but the "
              "image has no zoned extension (magic 0x%08x)",
              QCOW2_EXT_ZONED);
    return 0;
  }
  if (h->version < 3)
    WP_ERROR ("ERROR: a version %" PRIu32 " image has the zoned extension; "
              "zoned images are version 3 only", h->version);
  else if (!bit)
    WP_ERROR ("%s", "ERROR: the image has the zoned extension but "
              "incompatible bit 5 (zoned format) is clear");
  if (zoned_ext_parse (h->zoned_payload, h->zoned_payload_len, &g,
                       why, sizeof why) == -1) {
    WP_ERROR ("ERROR: %s", why);
    return 0;
  }

  /* The table's clusters are metadata, whatever the rest says. */
  if (g.zonedmeta_offset != 0 &&
      (g.zonedmeta_offset & (c->cluster_size - 1)) == 0)
    inc_refs (c, "write-pointer table", g.zonedmeta_offset,
              g.zonedmeta_size);

  if (zone_geometry_check (&g, h->size, c->cluster_size, true,
                           why, sizeof why) == -1) {
    WP_ERROR ("ERROR: zoned extension: %s; write pointers not checked", why);
    return 0;
  }
  if (((g.zonedmeta_offset + g.zonedmeta_size - 1) >> c->cluster_bits) >=
      c->nb_clusters)
    return 0;                   /* reported by inc_refs */

  buf = malloc (WP_CHUNK * 8);
  if (buf == NULL) {
    errno = ENOMEM;
    return -1;
  }

  /* First pass: does the table read better as the little-endian order of
   * an early implementation?  The engine accepts that table (and rewrites
   * it), so it is worth a warning, not an error.
   */
  for (i = 0; i < g.nr_zones; i += n) {
    uint32_t k;

    n = g.nr_zones - i < WP_CHUNK ? g.nr_zones - i : WP_CHUNK;
    if (read_wp_entries (c, &g, buf, i, n) == -1)
      goto out;
    for (k = 0; k < n; k++) {
      uint64_t be = load_be64 (buf + k * 8);
      uint64_t le = __builtin_bswap64 (be);
      be_bad += !wp_entry_decode (&g, h->size, i + k, be, &wp, &cond,
                                  why, sizeof why);
      le_bad += !wp_entry_decode (&g, h->size, i + k, le, &wp, &cond,
                                  why, sizeof why);
    }
  }
  little_endian = be_bad == g.nr_zones && le_bad == 0;
  if (little_endian) {
    zq_warning ("%s: the write-pointer table is in little-endian byte "
                "order (written by an early implementation); zqcow2 reads "
                "it and rewrites it big-endian on the first write",
                c->f.filename);
    goto out;
  }
  if (be_bad == 0)
    goto out;

  for (i = 0; i < g.nr_zones; i += n) {
    uint32_t k;

    n = g.nr_zones - i < WP_CHUNK ? g.nr_zones - i : WP_CHUNK;
    if (read_wp_entries (c, &g, buf, i, n) == -1)
      goto out;
    for (k = 0; k < n; k++)
      if (!wp_entry_decode (&g, h->size, i + k, load_be64 (buf + k * 8),
                            &wp, &cond, why, sizeof why))
        WP_ERROR ("ERROR: %s", why);
  }
 out:
  free (buf);
  return 0;
}

/* Stored refcounts against rebuilt references, cluster by cluster. */
static void
compare_refcounts (struct checker *c)
{
  uint64_t k, highest = 0;
  bool any = false;

  for (k = 0; k < c->nb_clusters; k++) {
    uint64_t refs = c->references[k];
    uint64_t stored;

    if (c->refblock_unknown[k >> c->refblock_bits]) {
      if (refs) {
        highest = k;
        any = true;
      }
      continue;
    }
    stored = c->refcounts[k];
    if (stored || refs) {
      highest = k;
      any = true;
    }
    if (refs > c->refcount_max)
      CORRUPTION ("ERROR cluster %" PRIu64 " has %" PRIu64 " references, "
                  "more than %u-bit refcounts can count", k, refs,
                  1u << c->f.h.refcount_order);
    else if (stored < refs)
      CORRUPTION ("ERROR cluster %" PRIu64 " refcount=%" PRIu64
                  " reference=%" PRIu64, k, stored, refs);
    else if (stored > refs) {
      PROBLEM (leaks, "Leaked cluster %" PRIu64 " refcount=%" PRIu64
               " reference=%" PRIu64, k, stored, refs);
    }
  }
  c->res->image_end_offset = any ? (highest + 1) * c->cluster_size : 0;
}

/* Opens the file and rebuilds every host cluster's references from the
 * metadata; with `compare`, also compares them with the stored refcounts
 * (zq_check).  Otherwise hands the references to the caller in *refs_out
 * (nb_out entries, one per cluster of the file).
 */
static int
count_references (const char *filename, struct zq_check_result *result,
                  bool compare, bool bitmaps_only,
                  uint32_t **refs_out, uint64_t *nb_out)
{
  struct checker checker, *c = &checker;
  const struct qcow2_header *h;
  uint64_t unknown;
  char names[512];
  int r = -1, saved_errno;

  memset (result, 0, sizeof *result);
  memset (c, 0, sizeof *c);
  c->res = result;
  c->rebuilding = !compare;
  if (image_file_open (&c->f, filename) == -1)
    return -1;
  h = &c->f.h;

  unknown = h->incompatible_features & ~CHECK_KNOWN_INCOMPATIBLE;
  if (unknown) {
    header_describe_features (h, 0, unknown, names, sizeof names);
    zq_error ("%s: unknown incompatible feature(s): %s; the image cannot "
              "be checked", filename, names);
    image_file_close (&c->f);
    errno = ENOTSUP;
    return -1;
  }

  c->cluster_size = c->f.cluster_size;
  c->cluster_bits = h->cluster_bits;
  c->nb_clusters = (c->f.file_size + c->cluster_size - 1) >> c->cluster_bits;
  c->refblock_bits = c->cluster_bits + 3 - h->refcount_order;
  c->refcount_max = h->refcount_order == 6 ? UINT64_MAX
    : (UINT64_C (1) << (1u << h->refcount_order)) - 1;
  c->extended_l2 = (h->incompatible_features & QCOW2_INCOMPAT_EXTL2) != 0;
  c->data_file = (h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE) != 0;
  result->total_clusters =
    (h->size + c->cluster_size - 1) >> c->cluster_bits;

  c->references = calloc (c->nb_clusters ? c->nb_clusters : 1,
                          sizeof *c->references);
  c->refcounts = calloc (c->nb_clusters ? c->nb_clusters : 1,
                         sizeof *c->refcounts);
  if (c->references == NULL || c->refcounts == NULL) {
    zq_error ("%s: out of memory for the refcounts of %" PRIu64
              " clusters", filename, c->nb_clusters);
    errno = ENOMEM;
    goto out;
  }

  if (compare && (h->incompatible_features & QCOW2_INCOMPAT_DIRTY))
    zq_warning ("%s: the image is dirty (incompatible bit 0: lazy "
                "refcounts were not written back); refcount errors are "
                "expected until 'qemu-img check -r all' repairs it",
                filename);
  if (h->incompatible_features & QCOW2_INCOMPAT_CORRUPT)
    zq_warning ("%s: the image is marked corrupt (incompatible bit 1)",
                filename);

  /* The stored refcounts first, so that OFLAG_COPIED can be checked
   * against them while walking the L2 tables.
   */
  if (bitmaps_only) {
    if (check_bitmaps (c) == -1) {
      zq_error ("%s: out of memory during the check", filename);
      errno = ENOMEM;
      goto out;
    }
    goto done;
  }
  inc_refs (c, "header", 0, c->cluster_size);
  if (load_refcounts (c) == -1 ||
      check_l1 (c, "L1 table", h->l1_table_offset, h->l1_size, true) == -1 ||
      check_snapshots (c) == -1 ||
      check_bitmaps (c) == -1 ||
      check_zoned (c) == -1) {
    zq_error ("%s: out of memory during the check", filename);
    errno = ENOMEM;
    goto out;
  }

 done:
  if (compare)
    compare_refcounts (c);
  else {
    *refs_out = c->references;
    *nb_out = c->nb_clusters;
    c->references = NULL;
  }
  r = 0;

 out:
  saved_errno = errno;
  free (c->references);
  free (c->refcounts);
  free (c->refblock_unknown);
  image_file_close (&c->f);
  errno = saved_errno;
  return r;
}

int
zq_check (const char *filename, struct zq_check_result *result)
{
  return count_references (filename, result, true, false, NULL, NULL);
}

int
check_rebuild_references (const char *filename,
                          struct zq_check_result *result,
                          uint32_t **references, uint64_t *nb_clusters)
{
  return count_references (filename, result, false, false, references,
                           nb_clusters);
}

int
check_bitmap_references (const char *filename,
                         struct zq_check_result *result,
                         uint32_t **references, uint64_t *nb_clusters)
{
  return count_references (filename, result, false, true, references,
                           nb_clusters);
}
