/* Opening and closing an image: validation of everything the engine will
 * trust, the in-memory tables and caches, and the features the image may
 * use.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "be.h"
#include "internal.h"

#define DEFAULT_L2_CACHE_MAX (UINT64_C (32) << 20)
#define REFBLOCK_CACHE_MAX (UINT64_C (4) << 20)

/* Logs "FILE: message" and fails with err. */
#define refuse(img, err, ...) zq_refuse ((img)->filename, (err), __VA_ARGS__)

/* The features of the header this engine can serve with this access. */
static int
check_features (struct zq_image *img)
{
  const struct qcow2_header *h = &img->header;
  uint64_t unknown;
  char names[512];

  unknown = h->incompatible_features & ~ZQ_KNOWN_INCOMPATIBLE;
  if (unknown) {
    header_describe_features (h, 0, unknown, names, sizeof names);
    return refuse (img, ENOTSUP, "unknown incompatible feature(s): %s; "
                   "the image cannot be opened safely", names);
  }
  if (h->has_zoned && !(h->incompatible_features & QCOW2_INCOMPAT_ZONED))
    return refuse (img, EINVAL, "%s", "the zoned header extension is present "
                   "but incompatible bit 5 (zoned format) is clear "
                   "(corrupt image)");
  if (h->compression_type > 1)
    return refuse (img, ENOTSUP, "compression type %u is unknown (0 zlib, "
                   "1 zstd)", h->compression_type);
  if ((h->compression_type != 0) !=
      ((h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION) != 0))
    return refuse (img, EINVAL, "compression type %u does not match "
                   "incompatible bit 3 (corrupt image)", h->compression_type);
  if (h->has_data_file && !(h->incompatible_features &
                             QCOW2_INCOMPAT_DATA_FILE))
    return refuse (img, EINVAL, "%s", "the external data file extension is "
                   "present but incompatible bit 2 is clear (corrupt image)");
  /* qemu refuses to create either with a data file: snapshots would
   * share data clusters that are not refcounted.
   */
  if ((h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE) &&
      h->nb_snapshots > 0)
    return refuse (img, ENOTSUP, "the image has an external data file and "
                   "%" PRIu32 " internal snapshot(s); the two cannot be "
                   "combined (qemu forbids it)", h->nb_snapshots);
  if ((h->incompatible_features & QCOW2_INCOMPAT_EXTL2) &&
      h->cluster_bits < QCOW2_MIN_EXTL2_CLUSTER_BITS)
    return refuse (img, EINVAL, "extended L2 entries (incompatible bit 4) "
                   "with cluster_bits %" PRIu32 ": subclusters would be "
                   "smaller than 512 bytes (corrupt image)", h->cluster_bits);
  if (img->readonly)
    return 0;

  if (h->incompatible_features & QCOW2_INCOMPAT_CORRUPT)
    return refuse (img, EROFS, "%s", "the image is marked corrupt "
                   "(incompatible bit 1); it can only be opened read-only "
                   "(nbdkit -r) until 'qemu-img check -r all' repairs it");
  /* A dirty image (incompatible bit 0) is repaired in zq_open. */
  return 0;
}

/* Reads and parses the header; a file that cannot be read is refused
 * with EIO, a header that does not pass with header_parse's errno.
 */
static int
read_header (struct zq_image *img, uint64_t file_size)
{
  char why[512];
  bool read_error;

  if (header_read (img->fd, file_size, &img->header, NULL, NULL,
                   &read_error, why, sizeof why) == -1)
    return refuse (img, read_error ? EIO : errno, "%s", why);
  return 0;
}

/* Reads `entries` big-endian u64 at `offset` into host order. */
static uint64_t *
read_table (struct zq_image *img, const char *what, uint64_t offset,
            uint64_t entries)
{
  uint64_t *table = malloc ((entries ? entries : 1) * sizeof *table);
  uint64_t i;

  if (table == NULL) {
    refuse (img, ENOMEM, "out of memory for the %s", what);
    return NULL;
  }
  if (full_pread (img->fd, table, entries * 8, offset) == -1) {
    refuse (img, EIO, "reading the %s: %s", what, strerror (errno));
    free (table);
    return NULL;
  }
  for (i = 0; i < entries; i++)
    table[i] = load_be64 (&table[i]);
  return table;
}

static int
setup_caches (struct zq_image *img, uint64_t l2_cache_bytes)
{
  uint64_t l2_tables, refblocks, cover;

  if (l2_cache_bytes == 0) {
    /* Enough to hold every L2 table the virtual size needs. */
    cover = UINT64_C (1) << (img->l2_bits + img->cluster_bits);
    l2_cache_bytes = (img->virtual_size + cover - 1) / cover
                     * img->cluster_size;
    if (l2_cache_bytes > DEFAULT_L2_CACHE_MAX)
      l2_cache_bytes = DEFAULT_L2_CACHE_MAX;
  }
  l2_tables = l2_cache_bytes / img->cluster_size;
  if (l2_tables < 4)
    l2_tables = 4;

  /* Refcount blocks for the virtual size plus some metadata. */
  refblocks = ((img->virtual_size >> img->cluster_bits) >>
               img->refblock_bits) + 4;
  if (refblocks * img->cluster_size > REFBLOCK_CACHE_MAX)
    refblocks = REFBLOCK_CACHE_MAX / img->cluster_size;
  if (refblocks < 4)
    refblocks = 4;

  img->l2_cache = metacache_new (img, "L2 table", l2_tables,
                                 img->cluster_size);
  img->refblock_cache = metacache_new (img, "refcount block", refblocks,
                                       img->cluster_size);
  if (img->l2_cache == NULL || img->refblock_cache == NULL)
    return refuse (img, ENOMEM, "%s", "out of memory for the metadata caches");
  metacache_set_kind (img->l2_cache, META_L2);
  metacache_set_kind (img->refblock_cache, META_REFCOUNT_BLOCK);
  metacache_set_dependency (img->l2_cache, img->refblock_cache);
  return 0;
}

/* A writer that does not maintain what an autoclear bit guards must
 * clear the bit.  zqcow2 does not maintain bitmaps; it keeps a raw data
 * file raw (data_file_zero), so bit 1 stays on images with a data file.
 */
static int
clear_autoclear_bits (struct zq_image *img)
{
  uint32_t *bitmap_refs;
  uint64_t bitmap_clusters;
  uint64_t keep = has_data_file (img) ? QCOW2_AUTOCLEAR_DATA_FILE_RAW : 0;
  uint64_t kept = img->header.autoclear_features & keep;
  struct qcow2_header changed = img->header;
  uint8_t fields[QH_SERIALIZED_MAX];
  int r;

  img->data_file_raw = kept != 0;
  if (img->header.version < 3 || img->header.autoclear_features == kept)
    return 0;
  changed.autoclear_features = kept;
  header_serialize (&changed, fields);
  if (bitmaps_collect (img, &bitmap_refs, &bitmap_clusters) == -1)
    return -1;
  if (image_pwrite (img, img->fd, META_HEADER,
                    fields + QH_AUTOCLEAR_FEATURES, 8,
                    QH_AUTOCLEAR_FEATURES) == -1 ||
      sync_file (img) == -1) {
    free (bitmap_refs);
    return refuse (img, EIO, "clearing the autoclear feature bits: %s",
                   strerror (errno));
  }
  zq_debug ("%s: cleared autoclear feature bits 0x%" PRIx64,
            img->filename, img->header.autoclear_features & ~kept);
  img->header.autoclear_features = kept;
  if (img->header.nb_bitmaps > 0)
    overlap_remove (img, META_BITMAP_DIRECTORY,
                    img->header.bitmap_directory_offset,
                    img->header.bitmap_directory_size);
  r = bitmap_refs ? bitmaps_release (img, bitmap_refs, bitmap_clusters) : 0;
  free (bitmap_refs);
  return r;
}

/* "64 MiB", "1 GiB", "4096 bytes": sizes as people read them. */
static void
human_size (uint64_t bytes, char *out, size_t len)
{
  static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
  int u = -1;

  while (bytes >= 1024 && bytes % 1024 == 0 && u < 4) {
    bytes /= 1024;
    u++;
  }
  if (u < 0)
    snprintf (out, len, "%" PRIu64 " bytes", bytes);
  else
    snprintf (out, len, "%" PRIu64 " %s", bytes, units[u]);
}

static void
limit_text (uint32_t limit, char *out, size_t len)
{
  if (limit)
    snprintf (out, len, "%" PRIu32, limit);
  else
    snprintf (out, len, "unlimited");
}

static void
describe (struct zq_image *img)
{
  char line[512];

  if (img->zones) {
    const struct zq_zone_geometry *g = &img->zones->geometry;
    char zone_size[32], capacity[32], max_open[16], max_active[16];
    char last[64] = "";

    human_size (g->zone_size, zone_size, sizeof zone_size);
    human_size (g->zone_capacity, capacity, sizeof capacity);
    limit_text (g->max_open_zones, max_open, sizeof max_open);
    limit_text (g->max_active_zones, max_active, sizeof max_active);
    if (img->virtual_size % g->zone_size) {
      char tail[32];
      human_size (img->virtual_size % g->zone_size, tail, sizeof tail);
      snprintf (last, sizeof last, ", the last one %s", tail);
    }
    snprintf (line, sizeof line, "host-managed zoned: %" PRIu32 " x %s zones "
              "(capacity %s%s), %" PRIu32 " conventional, max open %s, "
              "max active %s", g->nr_zones, zone_size, capacity, last,
              g->conventional_zones, max_open, max_active);
  }
  else
    snprintf (line, sizeof line, "qcow2 v%" PRIu32 " image, %" PRIu64
              " bytes, %" PRIu32 "-byte clusters", img->header.version,
              img->virtual_size, img->cluster_size);
  if (img->backing) {
    size_t used = strlen (line);
    snprintf (line + used, sizeof line - used, ", backing file %s (%s)",
              backing_filename (img), backing_format (img));
  }
  img->description = strdup (line);
}

static void
free_image (struct zq_image *img)
{
  backing_free (img->backing);
  overlap_free (img->overlap);
  zones_free (img->zones);
  metacache_free (img->l2_cache);
  metacache_free (img->refblock_cache);
  free (img->l1_table);
  free (img->refcount_table);
  free (img->pending_frees);
  free (img->flushing_frees);
  free (img->l1_flushing);
  free (img->description);
  header_free (&img->header);
  if (img->data_fd >= 0 && img->data_fd != img->fd)
    close (img->data_fd);
  free (img->data_filename);
  if (img->fd >= 0)
    close (img->fd);
  free (img->filename);
  free (img);
}

struct zq_image *
zq_open (const struct zq_open_options *options)
{
  return image_open (options, NULL);
}

struct zq_image *
image_open (const struct zq_open_options *options,
            const struct open_chain *above)
{
  struct zq_image *img;
  struct open_chain chain;
  struct stat st;
  int saved_errno;

  img = calloc (1, sizeof *img);
  if (img == NULL)
    return NULL;
  img->fd = img->data_fd = -1;
  img->readonly = options->readonly;
  img->filename = strdup (options->filename);
  if (img->filename == NULL)
    goto fail;
  pthread_mutex_init (&img->meta_lock, NULL);
  pthread_mutex_init (&img->flush_lock, NULL);
  range_lock_init (&img->ranges);

  img->fd = open (img->filename,
                  (img->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (img->fd == -1) {
    saved_errno = errno;
    zq_error ("%s: %m", img->filename);
    errno = saved_errno;
    goto fail;
  }
  if (fstat (img->fd, &st) == -1) {
    refuse (img, errno, "fstat: %s", strerror (errno));
    goto fail;
  }
  if (read_header (img, st.st_size) == -1 || check_features (img) == -1)
    goto fail;
  if (img->header.incompatible_features & QCOW2_INCOMPAT_DATA_FILE) {
    if (data_file_open (img, options->data_file) == -1)
      goto fail;
  }
  else if (options->data_file) {
    refuse (img, EINVAL, "a data file (%s) was given with data-file= or "
            "--data-file, but the image has no external data file "
            "(incompatible bit 2 is clear)", options->data_file);
    goto fail;
  }
  else
    img->data_fd = img->fd;

  img->cluster_bits = img->header.cluster_bits;
  img->cluster_size = UINT32_C (1) << img->cluster_bits;
  /* An extended L2 entry is 16 bytes: the descriptor, then the
   * subcluster bitmap (subcluster.c).
   */
  img->extended_l2 =
    (img->header.incompatible_features & QCOW2_INCOMPAT_EXTL2) != 0;
  img->l2_entry_bytes = img->extended_l2 ? 16 : 8;
  img->l2_bits = img->cluster_bits - (img->extended_l2 ? 4 : 3);
  img->subcluster_bits = img->cluster_bits -
                         (img->extended_l2 ? QCOW2_SUBCLUSTER_ORDER : 0);
  img->virtual_size = img->header.size;
  img->refcount_order = img->header.refcount_order;
  img->refblock_bits = img->cluster_bits + 3 - img->refcount_order;
  img->refcount_max = img->refcount_order == 6 ? UINT64_MAX :
    (UINT64_C (1) << (1u << img->refcount_order)) - 1;
  img->alloc_end = ((uint64_t) st.st_size + img->cluster_size - 1)
                   >> img->cluster_bits;

  img->l1_size = img->header.l1_size;
  img->l1_table = read_table (img, "L1 table", img->header.l1_table_offset,
                              img->l1_size);
  img->refcount_table_entries =
    (uint64_t) img->header.refcount_table_clusters * img->cluster_size / 8;
  img->refcount_table = read_table (img, "refcount table",
                                    img->header.refcount_table_offset,
                                    img->refcount_table_entries);
  if (img->l1_table == NULL || img->refcount_table == NULL)
    goto fail;

  if (setup_caches (img, options->l2_cache_bytes) == -1)
    goto fail;
  if (img->header.incompatible_features & QCOW2_INCOMPAT_ZONED) {
    if (zones_open (img, st.st_size, options->offline_zones,
                    options->readonly_zones) == -1)
      goto fail;
    img->zones->boundary_split = options->zone_boundary_split;
  }
  else if (options->offline_zones || options->readonly_zones) {
    refuse (img, EINVAL, "%s", "offline-zones and readonly-zones need a "
            "zoned image");
    goto fail;
  }
  /* Before anything is written: the repair and the autoclear bits go
   * through the overlap check too.
   */
  if (overlap_build (img, st.st_size) == -1)
    goto fail;
  chain = (struct open_chain) {
    .dev = st.st_dev, .ino = st.st_ino,
    .depth = above ? above->depth + 1 : 0, .above = above,
  };
  if (backing_open (img, options, &chain) == -1)
    goto fail;
  /* Before the autoclear bits go: the repair counts the clusters of the
   * bitmaps they still vouch for.
   */
  if (!img->readonly &&
      (img->header.incompatible_features & QCOW2_INCOMPAT_DIRTY) &&
      repair_dirty_image (img) == -1)
    goto fail;
  if (!img->readonly && clear_autoclear_bits (img) == -1)
    goto fail;
  describe (img);
  if (img->description == NULL)
    goto fail;
  return img;

 fail:
  saved_errno = errno ? errno : EINVAL;
  free_image (img);
  errno = saved_errno;
  return NULL;
}

int
zq_close (struct zq_image *img)
{
  int r = 0;

  if (img == NULL)
    return 0;
  if (!img->readonly) {
    /* Data, metadata and write pointers, as a FLUSH would; the flush also
     * writes the refcounts of the clusters it releases, so a cleanly
     * closed image has no leaks.
     */
    r = zq_flush (img);
    if (r == 0) {
      pthread_mutex_lock (&img->meta_lock);
      r = sync_file (img);
      pthread_mutex_unlock (&img->meta_lock);
    }
  }
  refusal_log_flush (img);
  range_lock_destroy (&img->ranges);
  pthread_mutex_destroy (&img->meta_lock);
  pthread_mutex_destroy (&img->flush_lock);
  free_image (img);
  return r;
}

const char *zq_filename (const struct zq_image *img) { return img->filename; }
uint64_t zq_virtual_size (const struct zq_image *img) { return img->virtual_size; }
uint32_t zq_cluster_size (const struct zq_image *img) { return img->cluster_size; }

/* Any request size and alignment works on a plain image; a zoned image
 * has 512-byte logical blocks.  Whole clusters avoid read-modify-write;
 * cluster sizes are powers of two, as NBD requires of the preferred
 * size.  NBD clients do well with at least 4 KiB, and nbdkit accepts at
 * most 32 MiB.
 */
#define MIN_PREFERRED_BLOCK (UINT32_C (4) << 10)
#define MAX_PREFERRED_BLOCK (UINT32_C (32) << 20)

void
zq_block_limits (const struct zq_image *img, struct zq_block_limits *limits)
{
  uint32_t preferred = img->cluster_size;

  if (preferred < MIN_PREFERRED_BLOCK)
    preferred = MIN_PREFERRED_BLOCK;
  if (preferred > MAX_PREFERRED_BLOCK)
    preferred = MAX_PREFERRED_BLOCK;
  limits->minimum = img->zones ? ZQ_ZONED_BLOCK_SIZE : 1;
  limits->preferred = preferred;
  limits->maximum = UINT32_MAX;
}
bool zq_is_readonly (const struct zq_image *img) { return img->readonly; }
int zq_qcow2_version (const struct zq_image *img) { return img->header.version; }
const char *zq_backing_filename (const struct zq_image *img) { return backing_filename (img); }
const char *zq_description (const struct zq_image *img) { return img->description; }
