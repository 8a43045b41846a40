/* Metadata overlap protection; see overlap.h.
 *
 * The set is a sparse array of 4-bit kinds, one per host cluster, in
 * chunks of 1024 clusters (512 bytes each) found through an open-addressed
 * hash table of chunk numbers.  Only chunks that hold some metadata
 * exist, so the memory follows the metadata, not the file size: a 64 TiB
 * sparse file with a few tables costs a few chunks.  Chunks are never
 * freed: a cleared chunk stays, empty, for the next table.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "be.h"
#include "internal.h"
#include "overlap.h"

#define CHUNK_BITS 10
#define CHUNK_CLUSTERS (1u << CHUNK_BITS)
#define WORD_CLUSTERS 16                /* 4-bit kinds in a uint64_t */
#define CHUNK_WORDS (CHUNK_CLUSTERS / WORD_CLUSTERS)
#define NO_CHUNK UINT64_MAX

/* qemu's limits for the snapshot table (as check-tables.c). */
#define MAX_SNAPSHOTS       65536
#define MAX_SNAPSHOT_TABLE  (UINT64_C (64) << 20)

struct chunk {
  uint64_t words[CHUNK_WORDS];  /* read and written atomically */
};

/* An open-addressed hash table of chunks, at most half full.  Growing
 * makes a new one and publishes it; the old one is kept (on `retired`)
 * until the set is freed, so a reader that still probes it is safe.
 */
struct chunk_table {
  uint64_t *keys;               /* chunk numbers, NO_CHUNK when empty */
  struct chunk **chunks;
  size_t nr_buckets;            /* a power of 2 */
  struct chunk_table *retired;
};

/* Readers (overlap_find, overlap_kind_at) take no lock: a data write
 * checks its range with a few loads.  Writers (add, remove) serialize
 * on `lock`; a key is stored after its chunk pointer, with release
 * order, so a reader that sees the key sees the chunk.
 */
struct overlap_set {
  /* Entries found at open not to point at a table of their kind: one
   * bit per L1 entry and per refcount table entry.  They do not change
   * after overlap_build.
   */
  uint64_t *l1_invalid;
  uint64_t *reftable_invalid;
  uint64_t reftable_invalid_entries;

  pthread_mutex_t lock;
  struct chunk_table *table;    /* atomic */
  size_t nr_chunks;
  uint64_t chunk_end;           /* one past the highest chunk created */
};

const char *
meta_kind_name (enum meta_kind kind)
{
  static const char *const names[META_NR_KINDS] = {
    [META_NONE] = "guest data",
    [META_HEADER] = "the header",
    [META_L1] = "the L1 table",
    [META_REFCOUNT_TABLE] = "the refcount table",
    [META_REFCOUNT_BLOCK] = "a refcount block",
    [META_L2] = "an L2 table",
    [META_SNAPSHOT_TABLE] = "the snapshot table",
    [META_SNAPSHOT_L1] = "the L1 table of a snapshot",
    [META_BITMAP_DIRECTORY] = "the bitmap directory",
    [META_WP_TABLE] = "the write-pointer table",
  };
  return (unsigned) kind < META_NR_KINDS ? names[kind] : "metadata";
}

static size_t
bucket_of (const struct chunk_table *t, uint64_t chunk)
{
  return (size_t) ((chunk * UINT64_C (0x9e3779b97f4a7c15)) >> 32) &
         (t->nr_buckets - 1);
}

/* The chunk numbered `chunk`, or NULL.  No lock needed. */
static struct chunk *
find_chunk (const struct overlap_set *set, uint64_t chunk)
{
  const struct chunk_table *t = __atomic_load_n (&set->table,
                                                 __ATOMIC_ACQUIRE);
  uint64_t key;
  size_t b;

  if (t == NULL)
    return NULL;
  for (b = bucket_of (t, chunk);
       (key = __atomic_load_n (&t->keys[b], __ATOMIC_ACQUIRE)) != NO_CHUNK;
       b = (b + 1) & (t->nr_buckets - 1))
    if (key == chunk)
      return t->chunks[b];
  return NULL;
}

static void
insert_bucket (struct chunk_table *t, uint64_t chunk, struct chunk *ch)
{
  size_t b = bucket_of (t, chunk);

  while (t->keys[b] != NO_CHUNK)
    b = (b + 1) & (t->nr_buckets - 1);
  t->chunks[b] = ch;
  __atomic_store_n (&t->keys[b], chunk, __ATOMIC_RELEASE);
}

/* Publishes a table twice as large.  set->lock held. */
static int
grow_chunk_table (struct overlap_set *set)
{
  struct chunk_table *old = set->table, *t;
  size_t n = old ? old->nr_buckets * 2 : 64, i;

  t = calloc (1, sizeof *t);
  if (t == NULL)
    return -1;
  t->keys = malloc (n * sizeof *t->keys);
  t->chunks = malloc (n * sizeof *t->chunks);
  if (t->keys == NULL || t->chunks == NULL) {
    free (t->keys);
    free (t->chunks);
    free (t);
    errno = ENOMEM;
    return -1;
  }
  t->nr_buckets = n;
  for (i = 0; i < n; i++)
    t->keys[i] = NO_CHUNK;
  for (i = 0; old && i < old->nr_buckets; i++)
    if (old->keys[i] != NO_CHUNK)
      insert_bucket (t, old->keys[i], old->chunks[i]);
  t->retired = old;
  __atomic_store_n (&set->table, t, __ATOMIC_RELEASE);
  return 0;
}

/* The chunk numbered `chunk`, created empty if missing.  set->lock held. */
static struct chunk *
get_chunk (struct overlap_set *set, uint64_t chunk)
{
  struct chunk *ch = find_chunk (set, chunk);

  if (ch)
    return ch;
  if ((set->table == NULL ||
       (set->nr_chunks + 1) * 2 > set->table->nr_buckets) &&
      grow_chunk_table (set) == -1)
    return NULL;
  ch = calloc (1, sizeof *ch);
  if (ch == NULL)
    return NULL;
  insert_bucket (set->table, chunk, ch);
  set->nr_chunks++;
  if (chunk >= set->chunk_end)
    set->chunk_end = chunk + 1;
  return ch;
}

static uint64_t
word_of (const struct chunk *ch, unsigned i)
{
  return __atomic_load_n (&ch->words[i / WORD_CLUSTERS], __ATOMIC_RELAXED);
}

static enum meta_kind
kind_in (const struct chunk *ch, uint64_t cluster)
{
  unsigned i = cluster & (CHUNK_CLUSTERS - 1);

  return (word_of (ch, i) >> (i % WORD_CLUSTERS * 4)) & 15;
}

static void
set_kind_in (struct chunk *ch, uint64_t cluster, enum meta_kind kind)
{
  unsigned i = cluster & (CHUNK_CLUSTERS - 1);
  unsigned shift = i % WORD_CLUSTERS * 4;
  uint64_t *w = &ch->words[i / WORD_CLUSTERS];

  __atomic_store_n (w, (*w & ~(UINT64_C (15) << shift)) |
                    ((uint64_t) kind << shift), __ATOMIC_RELAXED);
}

/* Host clusters [*first, *end) of [offset, offset + bytes). */
static void
cluster_range (const struct zq_image *img, uint64_t offset, uint64_t bytes,
               uint64_t *first, uint64_t *end)
{
  *first = offset >> img->cluster_bits;
  *end = bytes == 0 ? *first
         : ((offset + bytes - 1) >> img->cluster_bits) + 1;
}

int
overlap_add (struct zq_image *img, enum meta_kind kind, uint64_t offset,
             uint64_t bytes)
{
  struct overlap_set *set = img->overlap;
  uint64_t c, first, end;
  int r = 0;

  cluster_range (img, offset, bytes, &first, &end);
  pthread_mutex_lock (&set->lock);
  for (c = first; c < end; c++) {
    struct chunk *ch = get_chunk (set, c >> CHUNK_BITS);
    if (ch == NULL) {
      r = -1;
      break;
    }
    if (kind_in (ch, c) == META_NONE)
      set_kind_in (ch, c, kind);
  }
  pthread_mutex_unlock (&set->lock);
  if (r == -1) {
    zq_error ("%s: out of memory recording %s at 0x%" PRIx64,
              img->filename, meta_kind_name (kind), offset);
    errno = ENOMEM;
  }
  return r;
}

void
overlap_remove (struct zq_image *img, enum meta_kind kind, uint64_t offset,
                uint64_t bytes)
{
  struct overlap_set *set = img->overlap;
  uint64_t c, first, end;

  cluster_range (img, offset, bytes, &first, &end);
  pthread_mutex_lock (&set->lock);
  /* A region the set never held may claim any size (a bitmap directory
   * of 2^63 bytes, left out by overlap_build): only the clusters of its
   * chunks are looked at.
   */
  if (end > set->chunk_end << CHUNK_BITS)
    end = set->chunk_end << CHUNK_BITS;
  for (c = first; c < end; c++) {
    struct chunk *ch = find_chunk (set, c >> CHUNK_BITS);
    if (ch && kind_in (ch, c) == kind)
      set_kind_in (ch, c, META_NONE);
  }
  pthread_mutex_unlock (&set->lock);
}

enum meta_kind
overlap_kind_at (struct zq_image *img, uint64_t offset)
{
  struct overlap_set *set = img->overlap;
  uint64_t c = offset >> img->cluster_bits;
  const struct chunk *ch;
  enum meta_kind kind;

  if (set == NULL)
    return META_NONE;
  ch = find_chunk (set, c >> CHUNK_BITS);
  kind = ch ? kind_in (ch, c) : META_NONE;
  return kind;
}

const char *
overlap_where (struct zq_image *img, uint64_t offset, char *buf, size_t len)
{
  enum meta_kind kind = overlap_kind_at (img, offset);

  if (kind == META_NONE)
    return "which is beyond the end of the file or holds guest data";
  snprintf (buf, len, "which holds %s", meta_kind_name (kind));
  return buf;
}

/* The first cluster in [first, end) of one chunk whose kind is neither
 * META_NONE nor own, or `end`.  Whole words of free clusters are skipped
 * at once.
 */
static uint64_t
scan_chunk (const struct chunk *ch, enum meta_kind own, uint64_t first,
            uint64_t end)
{
  uint64_t c = first;

  while (c < end) {
    unsigned i = c & (CHUNK_CLUSTERS - 1);
    if (i % WORD_CLUSTERS == 0 && end - c >= WORD_CLUSTERS &&
        word_of (ch, i) == 0) {
      c += WORD_CLUSTERS;
      continue;
    }
    enum meta_kind kind = kind_in (ch, c);
    if (kind != META_NONE && kind != own)
      return c;
    c++;
  }
  return end;
}

bool
overlap_find (struct zq_image *img, enum meta_kind own, uint64_t offset,
              uint64_t count, enum meta_kind *kind, uint64_t *at)
{
  struct overlap_set *set = img->overlap;
  uint64_t first, end, c;
  bool found = false;

  if (set == NULL)
    return false;
  cluster_range (img, offset, count, &first, &end);
  for (c = first; c < end && !found; ) {
    uint64_t chunk_end = ((c >> CHUNK_BITS) + 1) << CHUNK_BITS;
    uint64_t stop = chunk_end < end ? chunk_end : end;
    const struct chunk *ch = find_chunk (set, c >> CHUNK_BITS);
    uint64_t hit = ch ? scan_chunk (ch, own, c, stop) : stop;

    if (hit < stop) {
      *kind = kind_in (ch, hit);
      *at = hit << img->cluster_bits;
      found = true;
    }
    c = stop;
  }
  return found;
}

/* A table of `bytes` at `offset` that lies inside the file, aligned. */
static bool
table_fits (const struct zq_image *img, uint64_t offset, uint64_t bytes,
            uint64_t file_size)
{
  return offset != 0 && (offset & (img->cluster_size - 1)) == 0 &&
         offset < file_size && bytes <= file_size - offset;
}

/* The snapshot table and each snapshot's L1 table, walked as zq_check
 * walks them; a table that does not fit is left for zq_check to report.
 */
static int
add_snapshots (struct zq_image *img, uint64_t file_size)
{
  const struct qcow2_header *h = &img->header;
  uint64_t pos = h->snapshots_offset, table_bytes = 0;
  uint8_t fixed[40];
  uint32_t i;

  if (h->nb_snapshots == 0 || h->nb_snapshots > MAX_SNAPSHOTS)
    return 0;
  for (i = 0; i < h->nb_snapshots; i++) {
    uint64_t l1_offset, entry_bytes, l1_bytes;

    if (pos >= file_size || file_size - pos < sizeof fixed ||
        full_pread (img->fd, fixed, sizeof fixed, pos) == -1)
      break;
    l1_offset = load_be64 (fixed);
    l1_bytes = (uint64_t) load_be32 (fixed + 8) * 8;
    entry_bytes = (sizeof fixed + (uint64_t) load_be32 (fixed + 36) +
                   load_be16 (fixed + 12) + load_be16 (fixed + 14) + 7)
                  & ~UINT64_C (7);
    table_bytes += entry_bytes;
    pos += entry_bytes;
    if (table_bytes > MAX_SNAPSHOT_TABLE)
      break;
    if (l1_bytes > 0 && table_fits (img, l1_offset, l1_bytes, file_size) &&
        overlap_add (img, META_SNAPSHOT_L1, l1_offset, l1_bytes) == -1)
      return -1;
  }
  if (table_fits (img, h->snapshots_offset, table_bytes, file_size))
    return overlap_add (img, META_SNAPSHOT_TABLE, h->snapshots_offset,
                        table_bytes);
  return 0;
}

static bool
bit_is_set (const uint64_t *bits, uint64_t i)
{
  return (bits[i / 64] >> (i % 64)) & 1;
}

bool
overlap_l1_entry_valid (const struct zq_image *img, uint64_t i)
{
  return img->overlap == NULL || i >= img->l1_size ||
         !bit_is_set (img->overlap->l1_invalid, i);
}

bool
overlap_reftable_entry_valid (const struct zq_image *img, uint64_t ti)
{
  const struct overlap_set *set = img->overlap;

  return set == NULL || ti >= set->reftable_invalid_entries ||
         !bit_is_set (set->reftable_invalid, ti);
}

/* With every table recorded, the entries that point at no table of
 * their kind (beyond the file, or on other metadata).
 */
static int
find_invalid_entries (struct zq_image *img)
{
  struct overlap_set *set = img->overlap;
  uint64_t i;

  set->l1_invalid = calloc (img->l1_size / 64 + 1, sizeof (uint64_t));
  set->reftable_invalid = calloc (img->refcount_table_entries / 64 + 1,
                                  sizeof (uint64_t));
  if (set->l1_invalid == NULL || set->reftable_invalid == NULL)
    return -1;
  set->reftable_invalid_entries = img->refcount_table_entries;
  for (i = 0; i < img->l1_size; i++) {
    uint64_t l2 = img->l1_table[i] & QCOW2_L1E_OFFSET_MASK;
    if (l2 != 0 && overlap_kind_at (img, l2) != META_L2)
      set->l1_invalid[i / 64] |= UINT64_C (1) << (i % 64);
  }
  for (i = 0; i < img->refcount_table_entries; i++) {
    uint64_t block = img->refcount_table[i] & QCOW2_REFT_OFFSET_MASK;
    if (block != 0 && overlap_kind_at (img, block) != META_REFCOUNT_BLOCK)
      set->reftable_invalid[i / 64] |= UINT64_C (1) << (i % 64);
  }
  return 0;
}

int
overlap_build (struct zq_image *img, uint64_t file_size)
{
  const struct qcow2_header *h = &img->header;
  struct overlap_set *set;
  uint64_t i;

  set = calloc (1, sizeof *set);
  if (set == NULL)
    return -1;
  pthread_mutex_init (&set->lock, NULL);
  img->overlap = set;

  /* The regions the header names first: a table found later on one of
   * their clusters keeps their kind there, and is refused where used.
   */
  if (overlap_add (img, META_HEADER, 0, img->cluster_size) == -1 ||
      overlap_add (img, META_L1, h->l1_table_offset,
                   (uint64_t) img->l1_size * 8) == -1 ||
      overlap_add (img, META_REFCOUNT_TABLE, h->refcount_table_offset,
                   (uint64_t) h->refcount_table_clusters
                   * img->cluster_size) == -1 ||
      add_snapshots (img, file_size) == -1)
    return -1;
  /* The bitmap directory matters while autoclear bit 0 vouches for it:
   * a read-write open releases it (clear_autoclear_bits).
   */
  if ((h->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) &&
      h->nb_bitmaps > 0 && h->bitmap_directory_size > 0 &&
      table_fits (img, h->bitmap_directory_offset,
                  h->bitmap_directory_size, file_size) &&
      overlap_add (img, META_BITMAP_DIRECTORY, h->bitmap_directory_offset,
                   h->bitmap_directory_size) == -1)
    return -1;
  /* The format takes any zonedmeta_size of at least 8 x nr_zones: only
   * the part inside the file can be overwritten, and a huge claim must
   * not cost a chunk per 4 GiB of it.
   */
  if (img->zones) {
    uint64_t wp_offset = img->zones->geometry.zonedmeta_offset;
    uint64_t wp_bytes = img->zones->geometry.zonedmeta_size;

    if (wp_offset < file_size && wp_bytes > file_size - wp_offset)
      wp_bytes = file_size - wp_offset;
    if (wp_offset < file_size &&
        overlap_add (img, META_WP_TABLE, wp_offset, wp_bytes) == -1)
      return -1;
  }

  for (i = 0; i < img->refcount_table_entries; i++) {
    uint64_t block = img->refcount_table[i] & QCOW2_REFT_OFFSET_MASK;
    if (table_fits (img, block, img->cluster_size, file_size) &&
        overlap_add (img, META_REFCOUNT_BLOCK, block,
                     img->cluster_size) == -1)
      return -1;
  }
  /* With a data file the L2 tables are still in the image file. */
  for (i = 0; i < img->l1_size; i++) {
    uint64_t l2 = img->l1_table[i] & QCOW2_L1E_OFFSET_MASK;
    if (table_fits (img, l2, img->cluster_size, file_size) &&
        overlap_add (img, META_L2, l2, img->cluster_size) == -1)
      return -1;
  }
  return find_invalid_entries (img);
}

void
overlap_free (struct overlap_set *set)
{
  size_t i;

  if (set == NULL)
    return;
  if (set->table) {
    struct chunk_table *t = set->table, *next;
    for (i = 0; i < t->nr_buckets; i++)
      if (t->keys[i] != NO_CHUNK)
        free (t->chunks[i]);
    for (; t; t = next) {
      next = t->retired;
      free (t->keys);
      free (t->chunks);
      free (t);
    }
  }
  free (set->l1_invalid);
  free (set->reftable_invalid);
  pthread_mutex_destroy (&set->lock);
  free (set);
}

/* Sets incompatible bit 1 in the file and syncs it.  The one write that
 * bypasses the overlap check (image-write.c): it is the 8-byte feature
 * field of the header, and it must go through even though every other
 * write is now refused.  The caller may hold meta_lock: this is the one
 * sync under it, once in the life of an image, when it is found corrupt
 * (the next open must see the bit, and nothing else will sync it: every
 * later write, a flush's too, fails).
 */
static void
write_corrupt_bit (struct zq_image *img)
{
  struct qcow2_header changed = img->header;
  uint8_t fields[QH_SERIALIZED_MAX];
  uint64_t features = img->header.incompatible_features |
                      QCOW2_INCOMPAT_CORRUPT;

  if (img->readonly || img->header.version < 3)
    return;
  changed.incompatible_features = features;
  header_serialize (&changed, fields);
  if (full_pwrite (img->fd, fields + QH_INCOMPATIBLE_FEATURES, 8,
                   QH_INCOMPATIBLE_FEATURES) == -1 ||
      fdatasync (img->fd) == -1) {
    zq_error ("%s: marking the image corrupt (incompatible bit 1): %m",
              img->filename);
    return;
  }
  img->header.incompatible_features = features;
}

int
image_corrupt (struct zq_image *img, const char *fs, ...)
{
  char why[768];
  va_list args;

  va_start (args, fs);
  vsnprintf (why, sizeof why, fs, args);
  va_end (args);
  if (!__atomic_exchange_n (&img->corrupt, true, __ATOMIC_ACQ_REL)) {
    zq_error ("%s: %s; %s", img->filename, why,
              img->readonly ? "the image is corrupt"
              : "the image is marked corrupt (incompatible bit 1) and "
              "takes no more writes ('qemu-img check -r all' repairs it)");
    write_corrupt_bit (img);
  }
  else
    zq_debug ("%s: %s", img->filename, why);
  errno = EIO;
  return -1;
}
