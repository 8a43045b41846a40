/* Creating a new, empty qcow2 v3 image (zqcow2-img create).
 *
 * Layout, in host clusters:
 *
 *   0                       header and extensions
 *   1 ..                    refcount table
 *   then                    refcount blocks
 *   then                    L1 table (all zero unless data_file_raw)
 *   then                    write-pointer table (zoned images only)
 *   then                    L2 tables (data_file_raw only)
 *
 * Every one of those clusters has refcount 1 and nothing else is
 * allocated, so the image checks clean from the start.  With an external
 * data file and data_file_raw, the L2 tables map every cluster to the
 * same offset in the data file, as qemu-img makes such images: the data
 * file is the disk from the start, and data clusters are not refcounted.
 *
 * Everything is validated before any file is touched.  The image is then
 * written to a temporary file next to the target and renamed over it only
 * once complete and synced (create-replace.c): the target is either left
 * as it was or replaced by a whole image, never half-written.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "be.h"
#include "create-replace.h"
#include "internal.h"
#include "qcow2-format.h"
#include "refcount.h"
#include "zoned-format.h"

#define DEFAULT_CLUSTER_SIZE     (UINT32_C (64) * 1024)
#define DEFAULT_REFCOUNT_BITS    16
#define DEFAULT_ZONE_SIZE        (UINT64_C (256) * 1024 * 1024)
#define DEFAULT_MAX_APPEND_BYTES (UINT32_C (64) * 1024)

#define HEADER_LENGTH            112
#define FEATURE_NAME_ENTRY       48
#define COMPRESSION_TYPE_ZSTD    1
/* Host offsets in L2 entries are bits 9-55. */
#define MAX_DATA_FILE_BYTES      (UINT64_C (1) << 56)

/* The feature name table, as QEMU writes it, plus bit 5. */
static const struct {
  uint8_t type;                 /* 0 incompatible, 1 compatible, 2 autoclear */
  uint8_t bit;
  const char *name;
} feature_names[] = {
  { 0, 0, "dirty bit" },
  { 0, 1, "corrupt bit" },
  { 0, 2, "external data file" },
  { 0, 3, "compression type" },
  { 0, 4, "extended L2 entries" },
  { 0, 5, "zoned format" },
  { 1, 0, "lazy refcounts" },
  { 2, 0, "bitmaps" },
  { 2, 1, "raw external data" },
};
#define NR_FEATURE_NAMES (sizeof feature_names / sizeof feature_names[0])

/* Where everything goes, computed before anything is written. */
struct layout {
  uint32_t cluster_size;
  unsigned cluster_bits;
  unsigned refcount_order;
  uint64_t size;                /* virtual size, rounded up to 512 */
  uint32_t l1_size;
  uint64_t refcount_table_offset;
  uint32_t refcount_table_clusters;
  uint64_t refblocks_offset;
  uint64_t nr_refblocks;
  uint64_t l1_offset;
  uint64_t l1_clusters;
  uint64_t wp_clusters;
  uint64_t l2_offset;           /* preallocated L2 tables (data_file_raw) */
  uint64_t l2_clusters;
  uint64_t total_clusters;      /* every cluster of the file */
  bool zoned;
  struct zq_zone_geometry geometry;
};

/* Logs "FILE: message" and fails with EINVAL. */
#define refuse(filename, ...) zq_refuse ((filename), EINVAL, __VA_ARGS__)

static bool
is_power_of_two (uint64_t v)
{
  return v != 0 && (v & (v - 1)) == 0;
}

static unsigned
log2_exact (uint64_t v)
{
  unsigned bits = 0;

  while ((UINT64_C (1) << bits) < v)
    bits++;
  return bits;
}

static uint64_t
div_round_up (uint64_t n, uint64_t d)
{
  return n / d + (n % d != 0);
}

static size_t
extension_bytes (size_t payload_len)
{
  return 8 + ((payload_len + 7) & ~(size_t) 7);
}

/* The external data file options.  The name must fit in the header
 * cluster beside the zoned extension (the feature name table gives way),
 * and the disk in what an L2 entry can address, since each cluster sits
 * at its own guest offset in the data file.
 */
static int
plan_data_file (const struct zq_create_options *o, struct layout *lay)
{
  const char *fn = o->filename;
  size_t len, room;

  if (o->data_file == NULL) {
    if (o->data_file_raw)
      return refuse (fn, "%s", "data_file_raw=on needs an external data "
                     "file: give data_file=NAME too");
    return 0;
  }
  len = strlen (o->data_file);
  if (len == 0)
    return refuse (fn, "%s", "data_file: the data file name is empty");
  /* qemu would parse these names; the engine only opens files. */
  if (strncmp (o->data_file, "json:", 5) == 0 ||
      strstr (o->data_file, "://") != NULL)
    return refuse (fn, "data_file \"%s\" looks like a QEMU protocol or "
                   "json: name; zqcow2 names data files by file name only",
                   o->data_file);
  room = lay->cluster_size - HEADER_LENGTH - 8 -
         (lay->zoned ? extension_bytes (ZONED_EXT_MIN_LENGTH) : 0);
  if (extension_bytes (len) > room)
    return refuse (fn, "data_file: the name is %zu bytes, too long for "
                   "the header cluster (cluster_size %" PRIu32 " leaves "
                   "room for %zu)", len, lay->cluster_size,
                   room >= 8 ? room - 8 : 0);
  if (lay->size > MAX_DATA_FILE_BYTES)
    return refuse (fn, "size %" PRIu64 " is too large for an external "
                   "data file: its clusters sit at their guest offsets, "
                   "and L2 entries address only the first %" PRIu64
                   " bytes", lay->size, MAX_DATA_FILE_BYTES);
  if (o->data_file_raw)
    lay->l2_clusters = lay->l1_size;
  return 0;
}

/* The largest zone append QEMU's zoned series accepts for a capacity:
 * max_append_bytes + 512 must stay below it.  For a capacity of 512 even
 * 0 is refused (plan says so).
 */
static uint32_t
max_append_for_capacity (uint64_t capacity)
{
  uint64_t limit = DEFAULT_MAX_APPEND_BYTES;

  if (capacity <= 512)
    return 0;
  if (limit + 512 >= capacity)
    limit = (capacity - 513) & ~UINT64_C (511);
  return limit;
}

void
zq_create_defaults (struct zq_create_options *o)
{
  uint64_t size = (o->size + 511) & ~UINT64_C (511), nr_zones;

  if (o->cluster_size == 0)
    o->cluster_size = DEFAULT_CLUSTER_SIZE;
  if (o->refcount_bits == 0)
    o->refcount_bits = DEFAULT_REFCOUNT_BITS;
  if (!o->zoned)
    return;
  if (o->zone_size == 0)
    o->zone_size = DEFAULT_ZONE_SIZE;
  if (o->zone_capacity == 0)
    o->zone_capacity = o->zone_size;
  if (o->max_append_bytes == 0)
    o->max_append_bytes = max_append_for_capacity (o->zone_capacity);
  /* An open limit alone reads as "no limit" to QEMU's series, which
   * clamps it to the active limit without a zero test: state the same
   * behaviour in both fields.
   */
  nr_zones = size / o->zone_size + (size % o->zone_size != 0);
  if (o->max_open_zones && o->max_active_zones == 0 &&
      nr_zones > o->conventional_zones && nr_zones <= UINT32_MAX)
    o->max_active_zones = nr_zones - o->conventional_zones;
}

/* Checks the options and computes the layout.  Touches no file. */
static int
plan (const struct zq_create_options *given, struct layout *lay)
{
  struct zq_create_options filled = *given, *o = &filled;
  const char *fn = o->filename;
  uint64_t cs, l2_coverage, l1_bytes, refs_per_block, fixed, total;
  uint64_t nr_refblocks, reftable_clusters, next;
  char why[512];

  memset (lay, 0, sizeof *lay);

  /* The zone options are judged as given: "not zoned" with any of them
   * is refused before the defaults fill them in.
   */
  if (!o->zoned &&
      (o->zone_size || o->zone_capacity || o->conventional_zones ||
       o->max_open_zones || o->max_active_zones || o->max_append_bytes ||
       o->allow_short_last_zone))
    return refuse (fn, "%s", "zone options were given but the image is "
                   "not zoned (zone.mode=host-managed)");
  zq_create_defaults (o);

  cs = o->cluster_size;
  if (!is_power_of_two (cs) || cs < 512 || cs > 2 * 1024 * 1024)
    return refuse (fn, "cluster_size %" PRIu64 " is not a power of two "
                   "between 512 and 2M", cs);
  lay->cluster_size = cs;
  lay->cluster_bits = log2_exact (cs);

  if (!is_power_of_two (o->refcount_bits) || o->refcount_bits > 64)
    return refuse (fn, "refcount_bits %u is not a power of two between "
                   "1 and 64", o->refcount_bits);
  else
    lay->refcount_order = log2_exact (o->refcount_bits);

  /* Like qemu-img, the size is rounded up to whole 512-byte sectors. */
  if (o->size == 0)
    return refuse (fn, "%s", "size 0: the virtual size must be greater "
                   "than 0");
  if (o->size > (UINT64_C (1) << 62))
    return refuse (fn, "size %" PRIu64 " is too large (at most 2^62 "
                   "bytes)", o->size);
  lay->size = (o->size + 511) & ~UINT64_C (511);

  l2_coverage = cs * (cs / 8);
  l1_bytes = div_round_up (lay->size, l2_coverage) * 8;
  if (l1_bytes > QCOW2_MAX_L1_BYTES)
    return refuse (fn, "size %" PRIu64 " is too large for cluster_size %"
                   PRIu64 ": its L1 table would be %" PRIu64 " bytes, "
                   "more than %u", lay->size, cs, l1_bytes,
                   QCOW2_MAX_L1_BYTES);
  lay->l1_size = l1_bytes / 8;
  lay->l1_clusters = div_round_up (l1_bytes, cs);

  if (o->zoned) {
    struct zq_zone_geometry *g = &lay->geometry;
    char notes[ZONE_QEMU_NOTES_MAX][ZONE_QEMU_NOTE_LEN];
    uint64_t nr_zones;

    lay->zoned = true;
    g->zone_model = ZONE_MODEL_HOST_MANAGED;
    g->zone_size = o->zone_size;
    g->zone_capacity = o->zone_capacity;
    g->conventional_zones = o->conventional_zones;
    g->max_open_zones = o->max_open_zones;
    g->max_active_zones = o->max_active_zones;
    g->max_append_bytes = o->max_append_bytes;
    /* nr_zones and the table are derived here; zone_geometry_check then
     * judges the whole geometry with the same rules as opening (a zone
     * count above the format's limit included).  The table takes whole
     * clusters, but zonedmeta_size says exactly how many bytes of them
     * it uses: QEMU's series reads that many into 8 x nr_zones bytes.
     */
    nr_zones = g->zone_size ? div_round_up (lay->size, g->zone_size) : 0;
    g->nr_zones = nr_zones > UINT32_MAX ? UINT32_MAX : nr_zones;
    g->zonedmeta_size = (uint64_t) g->nr_zones * 8;
    lay->wp_clusters = div_round_up (g->zonedmeta_size, cs);
    g->zonedmeta_offset = cs;   /* placeholder, placed below */
    if (zone_geometry_check (g, lay->size, cs, o->allow_short_last_zone,
                             why, sizeof why) == -1)
      return refuse (fn, "%s", why);
    /* Whatever QEMU's series would refuse or read differently, create
     * does not write.  The defaults lead here only for a capacity of
     * 512; otherwise an explicit max_append_bytes does.
     */
    if (given->max_append_bytes == 0 && g->zone_capacity <= 512)
      return refuse (fn, "zone_capacity %" PRIu64 " leaves no valid "
                     "max_append_bytes: QEMU's zoned qcow2 series needs "
                     "max_append_bytes + 512 below zone_capacity",
                     g->zone_capacity);
    if (zone_geometry_qemu_notes (g, notes) > 0)
      return refuse (fn, "%s", notes[0]);
  }

  if (plan_data_file (o, lay) == -1)
    return -1;

  /* The refcount blocks must cover every cluster including themselves and
   * the refcount table: grow both until they do.
   */
  refs_per_block = UINT64_C (1) << (lay->cluster_bits + 3 -
                                    lay->refcount_order);
  fixed = 1 + lay->l1_clusters + lay->wp_clusters + lay->l2_clusters;
  nr_refblocks = 1;
  reftable_clusters = 1;
  for (;;) {
    total = fixed + reftable_clusters + nr_refblocks;
    next = div_round_up (total, refs_per_block);
    if (next == nr_refblocks &&
        div_round_up (nr_refblocks * 8, cs) == reftable_clusters)
      break;
    nr_refblocks = next;
    reftable_clusters = div_round_up (nr_refblocks * 8, cs);
  }
  if (reftable_clusters * cs > QCOW2_MAX_REFTABLE_BYTES)
    return refuse (fn, "the metadata of this image would need a refcount "
                   "table of %" PRIu64 " bytes, more than %u: use a larger "
                   "cluster_size or refcount_bits",
                   reftable_clusters * cs, QCOW2_MAX_REFTABLE_BYTES);

  lay->refcount_table_offset = cs;
  lay->refcount_table_clusters = reftable_clusters;
  lay->refblocks_offset = lay->refcount_table_offset + reftable_clusters * cs;
  lay->nr_refblocks = nr_refblocks;
  lay->l1_offset = lay->refblocks_offset + nr_refblocks * cs;
  if (lay->zoned)
    lay->geometry.zonedmeta_offset = lay->l1_offset + lay->l1_clusters * cs;
  lay->l2_offset = lay->l1_offset + (lay->l1_clusters + lay->wp_clusters) * cs;
  lay->total_clusters = total;
  return 0;
}

/* Appends one header extension at *pos; false if it does not fit. */
static bool
add_extension (uint8_t *buf, size_t buf_len, size_t *pos, uint32_t magic,
               const uint8_t *payload, uint32_t len)
{
  size_t padded = ((size_t) len + 7) & ~(size_t) 7;

  if (*pos + 8 + padded > buf_len)
    return false;
  store_be32 (buf + *pos, magic);
  store_be32 (buf + *pos + 4, len);
  memcpy (buf + *pos + 8, payload, len);
  memset (buf + *pos + 8 + len, 0, padded - len);
  *pos += 8 + padded;
  return true;
}

/* Fills the feature name table with the entries of the given types
 * (a bit mask of 1 << type).  Returns its length in bytes.
 */
static uint32_t
feature_table (uint8_t *table, unsigned types)
{
  uint32_t len = 0;
  size_t i;

  for (i = 0; i < NR_FEATURE_NAMES; i++) {
    if (!(types & (1u << feature_names[i].type)))
      continue;
    memset (table + len, 0, FEATURE_NAME_ENTRY);
    table[len] = feature_names[i].type;
    table[len + 1] = feature_names[i].bit;
    memcpy (table + len + 2, feature_names[i].name,
            strlen (feature_names[i].name));
    len += FEATURE_NAME_ENTRY;
  }
  return len;
}

/* The first cluster: header, data file name, feature name table, zoned
 * extension, end.
 */
static void
build_header (const struct zq_create_options *o, const struct layout *lay,
              uint8_t *buf)
{
  uint8_t table[NR_FEATURE_NAMES * FEATURE_NAME_ENTRY];
  uint8_t zoned[ZONED_EXT_MIN_LENGTH];
  struct qcow2_header header = { 0 };
  uint64_t incompatible = 0, compatible = 0, autoclear = 0;
  uint32_t table_len;
  size_t pos = HEADER_LENGTH, end_room;

  memset (buf, 0, lay->cluster_size);
  if (o->compression_zstd)
    incompatible |= QCOW2_INCOMPAT_COMPRESSION;
  if (lay->zoned)
    incompatible |= QCOW2_INCOMPAT_ZONED;
  if (o->lazy_refcounts)
    compatible |= QCOW2_COMPAT_LAZY_REFCOUNTS;
  if (o->data_file)
    incompatible |= QCOW2_INCOMPAT_DATA_FILE;
  if (o->data_file_raw)
    autoclear |= QCOW2_AUTOCLEAR_DATA_FILE_RAW;

  header.version = 3;
  header.cluster_bits = lay->cluster_bits;
  header.size = lay->size;
  header.l1_size = lay->l1_size;
  header.l1_table_offset = lay->l1_offset;
  header.refcount_table_offset = lay->refcount_table_offset;
  header.refcount_table_clusters = lay->refcount_table_clusters;
  header.incompatible_features = incompatible;
  header.compatible_features = compatible;
  header.autoclear_features = autoclear;
  header.refcount_order = lay->refcount_order;
  header.header_length = HEADER_LENGTH;
  header.compression_type = o->compression_zstd ? COMPRESSION_TYPE_ZSTD : 0;
  header_serialize (&header, buf);

  /* First, where qemu-img puts it too; plan checked that it fits. */
  if (o->data_file)
    add_extension (buf, lay->cluster_size, &pos, QCOW2_EXT_DATA_FILE,
                   (const uint8_t *) o->data_file, strlen (o->data_file));

  /* The zoned extension must fit; the feature name table is optional.
   * With 512-byte clusters the whole table does not fit beside the zoned
   * extension, so only the incompatible features' names are kept: those
   * are the ones a reader needs to explain why it refuses the image.
   */
  end_room = 8 + (lay->zoned ? 8 + ZONED_EXT_MIN_LENGTH : 0);
  table_len = feature_table (table, 0x7);
  if (pos + 8 + table_len + end_room > lay->cluster_size)
    table_len = feature_table (table, 0x1);
  if (pos + 8 + table_len + end_room <= lay->cluster_size)
    add_extension (buf, lay->cluster_size, &pos, QCOW2_EXT_FEATURE_TABLE,
                   table, table_len);
  if (lay->zoned) {
    zoned_ext_serialize (&lay->geometry, zoned);
    add_extension (buf, lay->cluster_size, &pos, QCOW2_EXT_ZONED,
                   zoned, sizeof zoned);
  }
  /* The end marker is the zeroes already at pos. */
}

static int
write_at (int fd, const char *filename, const char *what, const void *buf,
          size_t len, uint64_t offset)
{
  if (full_pwrite (fd, buf, len, offset) == -1) {
    int saved_errno = errno;
    zq_error ("%s: writing the %s: %s", filename, what,
              strerror (saved_errno));
    errno = saved_errno;
    return -1;
  }
  return 0;
}

/* The i-th entry of a table of big-endian 64-bit entries. */
typedef uint64_t table_entry_fn (const struct layout *lay, uint64_t i);

static uint64_t
refcount_table_entry (const struct layout *lay, uint64_t block)
{
  return lay->refblocks_offset + block * lay->cluster_size;
}

static uint64_t
write_pointer_entry (const struct layout *lay, uint64_t zone)
{
  const struct zq_zone_geometry *g = &lay->geometry;

  return wp_entry_encode (g, zone, zone * g->zone_size);
}

/* data_file_raw: L1 entries pointing at every L2 table, and L2 entries
 * mapping each cluster of the disk to its own offset in the data file.
 */
static uint64_t
l1_entry (const struct layout *lay, uint64_t table)
{
  return (lay->l2_offset + table * lay->cluster_size) | QCOW2_OFLAG_COPIED;
}

static uint64_t
l2_entry (const struct layout *lay, uint64_t data_cluster)
{
  return (data_cluster * lay->cluster_size) | QCOW2_OFLAG_COPIED;
}

/* Writes nr_entries entries from entry() at offset, cluster by cluster,
 * through the cluster-sized buffer.  The rest of the last cluster is
 * zeroes.
 */
static int
write_table (int fd, const char *fn, const char *what,
             const struct layout *lay, uint8_t *cluster, uint64_t offset,
             uint64_t nr_entries, table_entry_fn *entry)
{
  uint64_t cs = lay->cluster_size, per_cluster = cs / 8, first, j;

  for (first = 0; first < nr_entries; first += per_cluster) {
    memset (cluster, 0, cs);
    for (j = 0; j < per_cluster && first + j < nr_entries; j++)
      store_be64 (cluster + j * 8, entry (lay, first + j));
    if (write_at (fd, fn, what, cluster, cs,
                  offset + first / per_cluster * cs) == -1)
      return -1;
  }
  return 0;
}

/* Writes the whole image into fd (an empty file). */
static int
write_image (int fd, const struct zq_create_options *o,
             const struct layout *lay)
{
  const char *fn = o->filename;
  uint64_t cs = lay->cluster_size, i, j;
  uint64_t refs_per_block = cs * 8 >> lay->refcount_order;
  uint8_t *cluster;
  int r = -1;

  cluster = malloc (cs);
  if (cluster == NULL) {
    zq_error ("%s: out of memory", fn);
    errno = ENOMEM;
    return -1;
  }

  /* Size the file first: an L1 table of zeroes is not written. */
  if (ftruncate (fd, lay->total_clusters * cs) == -1) {
    int saved_errno = errno;
    zq_error ("%s: setting the file size to %" PRIu64 ": %s", fn,
              lay->total_clusters * cs, strerror (saved_errno));
    errno = saved_errno;
    goto out;
  }

  build_header (o, lay, cluster);
  if (write_at (fd, fn, "header", cluster, cs, 0) == -1)
    goto out;

  if (write_table (fd, fn, "refcount table", lay, cluster,
                   lay->refcount_table_offset, lay->nr_refblocks,
                   refcount_table_entry) == -1)
    goto out;

  for (i = 0; i < lay->nr_refblocks; i++) {
    memset (cluster, 0, cs);
    for (j = 0; j < refs_per_block; j++) {
      if (i * refs_per_block + j >= lay->total_clusters)
        break;
      refblock_entry_set (cluster, lay->refcount_order, j, 1);
    }
    if (write_at (fd, fn, "refcount block", cluster, cs,
                  lay->refblocks_offset + i * cs) == -1)
      goto out;
  }

  if (lay->zoned &&
      write_table (fd, fn, "write-pointer table", lay, cluster,
                   lay->geometry.zonedmeta_offset, lay->geometry.nr_zones,
                   write_pointer_entry) == -1)
    goto out;

  if (lay->l2_clusters &&
      (write_table (fd, fn, "L1 table", lay, cluster, lay->l1_offset,
                    lay->l2_clusters, l1_entry) == -1 ||
       write_table (fd, fn, "L2 table", lay, cluster, lay->l2_offset,
                    div_round_up (lay->size, lay->cluster_size),
                    l2_entry) == -1))
    goto out;

  if (fsync (fd) == -1) {
    int saved_errno = errno;
    zq_error ("%s: fsync: %s", fn, strerror (saved_errno));
    errno = saved_errno;
    goto out;
  }
  r = 0;
 out:
  free (cluster);
  return r;
}

int
zq_create (const struct zq_create_options *options)
{
  const char *fn = options->filename;
  struct layout lay;
  struct replace_target target = { .fd = -1 };
  char *data_path = NULL;
  bool data_created = false;
  int saved_errno;

  if (fn == NULL || fn[0] == '\0') {
    zq_error ("%s", "create: no file name");
    errno = EINVAL;
    return -1;
  }
  if (plan (options, &lay) == -1)
    return -1;

  if (replace_prepare (fn, &target) == -1)
    goto fail;
  if (options->data_file) {
    data_path = data_file_target (fn, options->data_file, target.path);
    if (data_path == NULL)
      goto fail;
  }
  if (replace_open (fn, &target) == -1 ||
      write_image (target.fd, options, &lay) == -1 ||
      replace_close (fn, &target) == -1)
    goto fail;
  if (data_path) {
    if (create_data_file (fn, data_path, lay.size, &data_created) == -1)
      goto fail;
    /* Neither existed before, and both names turn out to be one file. */
    if (same_file (target.path, data_path)) {
      refuse (fn, "data_file %s is the image itself", data_path);
      goto fail;
    }
  }
  if (replace_commit (fn, &target) == -1)
    goto fail;
  zq_debug ("%s: created: %" PRIu64 " bytes, %" PRIu32 "-byte clusters, "
            "%" PRIu64 " metadata clusters%s", fn, lay.size,
            lay.cluster_size, lay.total_clusters,
            lay.zoned ? ", zoned" : "");
  replace_abort (&target);      /* frees only: the file is in place */
  free (data_path);
  return 0;

 fail:
  saved_errno = errno ? errno : EIO;
  replace_abort (&target);
  if (data_created)
    unlink (data_path);
  free (data_path);
  errno = saved_errno;
  return -1;
}
