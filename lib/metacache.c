/* A write-back LRU cache of metadata tables; see metacache.h. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "metacache.h"

#define NO_SLOT (-1)
#define EMPTY_OFFSET UINT64_MAX

struct slot {
  uint64_t offset;              /* host offset of the table, or EMPTY */
  int32_t hash_next;            /* next slot in the same hash bucket */
  int32_t lru_prev, lru_next;   /* towards the most / least recent */
  bool dirty;
};

struct metacache {
  struct zq_image *img;
  const char *what;
  uint32_t nr_slots, table_size;
  uint8_t *tables;              /* nr_slots tables of table_size bytes */
  struct slot *slots;
  int32_t *buckets;
  uint32_t bucket_mask;
  int32_t lru_head, lru_tail;   /* most and least recently used */
  uint32_t nr_dirty;
  struct metacache *depends_on;
  struct metacache_stats stats;
};

static uint32_t
bucket_of (const struct metacache *c, uint64_t offset)
{
  /* Tables are cluster-aligned: mix the high bits down. */
  uint64_t h = offset * UINT64_C (0x9e3779b97f4a7c15);
  return (uint32_t) (h >> 32) & c->bucket_mask;
}

static uint8_t *
table_of (const struct metacache *c, int32_t i)
{
  return c->tables + (size_t) i * c->table_size;
}

static void
lru_unlink (struct metacache *c, int32_t i)
{
  struct slot *s = &c->slots[i];

  if (s->lru_prev != NO_SLOT)
    c->slots[s->lru_prev].lru_next = s->lru_next;
  else
    c->lru_head = s->lru_next;
  if (s->lru_next != NO_SLOT)
    c->slots[s->lru_next].lru_prev = s->lru_prev;
  else
    c->lru_tail = s->lru_prev;
}

static void
lru_push_head (struct metacache *c, int32_t i)
{
  struct slot *s = &c->slots[i];

  s->lru_prev = NO_SLOT;
  s->lru_next = c->lru_head;
  if (c->lru_head != NO_SLOT)
    c->slots[c->lru_head].lru_prev = i;
  c->lru_head = i;
  if (c->lru_tail == NO_SLOT)
    c->lru_tail = i;
}

static void
lru_touch (struct metacache *c, int32_t i)
{
  if (c->lru_head != i) {
    lru_unlink (c, i);
    lru_push_head (c, i);
  }
}

static int32_t
hash_find (const struct metacache *c, uint64_t offset)
{
  int32_t i;

  for (i = c->buckets[bucket_of (c, offset)]; i != NO_SLOT;
       i = c->slots[i].hash_next)
    if (c->slots[i].offset == offset)
      return i;
  return NO_SLOT;
}

static void
hash_insert (struct metacache *c, int32_t i)
{
  uint32_t b = bucket_of (c, c->slots[i].offset);

  c->slots[i].hash_next = c->buckets[b];
  c->buckets[b] = i;
}

static void
hash_remove (struct metacache *c, int32_t i)
{
  int32_t *link = &c->buckets[bucket_of (c, c->slots[i].offset)];

  while (*link != i)
    link = &c->slots[*link].hash_next;
  *link = c->slots[i].hash_next;
}

struct metacache *
metacache_new (struct zq_image *img, const char *what,
               uint32_t nr_slots, uint32_t table_size)
{
  struct metacache *c;
  uint32_t nr_buckets = 1;
  uint32_t i;

  if (nr_slots < 2)
    nr_slots = 2;
  while (nr_buckets < nr_slots)
    nr_buckets <<= 1;

  c = calloc (1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->img = img;
  c->what = what;
  c->nr_slots = nr_slots;
  c->table_size = table_size;
  c->bucket_mask = nr_buckets - 1;
  c->tables = malloc ((size_t) nr_slots * table_size);
  c->slots = calloc (nr_slots, sizeof *c->slots);
  c->buckets = malloc (nr_buckets * sizeof *c->buckets);
  if (c->tables == NULL || c->slots == NULL || c->buckets == NULL) {
    metacache_free (c);
    errno = ENOMEM;
    return NULL;
  }
  for (i = 0; i < nr_buckets; i++)
    c->buckets[i] = NO_SLOT;
  c->lru_head = c->lru_tail = NO_SLOT;
  for (i = 0; i < nr_slots; i++) {
    c->slots[i].offset = EMPTY_OFFSET;
    c->slots[i].hash_next = NO_SLOT;
    lru_push_head (c, i);
  }
  c->stats.nr_slots = nr_slots;
  return c;
}

void
metacache_free (struct metacache *c)
{
  if (c == NULL)
    return;
  free (c->tables);
  free (c->slots);
  free (c->buckets);
  free (c);
}

void
metacache_set_dependency (struct metacache *c, struct metacache *depends_on)
{
  c->depends_on = depends_on;
}

/* Before any table of c reaches the disk, what it depends on must be
 * durable: the tables of the cache it depends on, and (covered by the
 * same sync) the guest data its entries point at.
 */
static int
prepare_write (struct metacache *c)
{
  if (c->depends_on == NULL)
    return 0;
  if (metacache_writeback (c->depends_on) == -1)
    return -1;
  if (c->img->unsynced_writes && sync_file (c->img) == -1)
    return -1;
  return 0;
}

static int
write_slot (struct metacache *c, int32_t i)
{
  struct slot *s = &c->slots[i];

  if (full_pwrite (c->img->fd, table_of (c, i), c->table_size,
                   s->offset) == -1) {
    int saved_errno = errno;
    zq_error ("%s: writing the %s at offset 0x%" PRIx64 ": %m",
              c->img->filename, c->what, s->offset);
    errno = saved_errno == ENOSPC ? ENOSPC : EIO;
    return -1;
  }
  c->img->unsynced_writes = true;
  s->dirty = false;
  c->nr_dirty--;
  c->stats.writebacks++;
  return 0;
}

/* Frees the least recently used slot, writing it back first if dirty. */
static int32_t
evict (struct metacache *c)
{
  int32_t i = c->lru_tail;
  struct slot *s = &c->slots[i];

  if (s->dirty) {
    if (prepare_write (c) == -1 || write_slot (c, i) == -1)
      return NO_SLOT;
  }
  if (s->offset != EMPTY_OFFSET) {
    hash_remove (c, i);
    s->offset = EMPTY_OFFSET;
    c->stats.evictions++;
  }
  return i;
}

static int
get_slot (struct metacache *c, uint64_t offset, bool is_new, uint8_t **table)
{
  int32_t i = hash_find (c, offset);

  if (i != NO_SLOT) {
    c->stats.hits++;
    lru_touch (c, i);
    if (is_new) {
      memset (table_of (c, i), 0, c->table_size);
      metacache_mark_dirty (c, table_of (c, i));
    }
    *table = table_of (c, i);
    return 0;
  }

  c->stats.misses++;
  i = evict (c);
  if (i == NO_SLOT)
    return -1;

  if (is_new)
    memset (table_of (c, i), 0, c->table_size);
  else if (full_pread (c->img->fd, table_of (c, i), c->table_size,
                       offset) == -1) {
    zq_error ("%s: reading the %s at offset 0x%" PRIx64 ": %m",
              c->img->filename, c->what, offset);
    errno = EIO;
    return -1;
  }
  c->slots[i].offset = offset;
  hash_insert (c, i);
  lru_touch (c, i);
  if (is_new)
    metacache_mark_dirty (c, table_of (c, i));
  *table = table_of (c, i);
  return 0;
}

int
metacache_get (struct metacache *c, uint64_t offset, uint8_t **table)
{
  return get_slot (c, offset, false, table);
}

int
metacache_get_new (struct metacache *c, uint64_t offset, uint8_t **table)
{
  return get_slot (c, offset, true, table);
}

void
metacache_mark_dirty (struct metacache *c, const uint8_t *table)
{
  int32_t i = (int32_t) ((table - c->tables) / c->table_size);

  if (!c->slots[i].dirty) {
    c->slots[i].dirty = true;
    c->nr_dirty++;
  }
}

int
metacache_writeback (struct metacache *c)
{
  uint32_t i;

  if (c->nr_dirty == 0)
    return 0;
  if (prepare_write (c) == -1)
    return -1;
  for (i = 0; i < c->nr_slots && c->nr_dirty > 0; i++)
    if (c->slots[i].dirty && write_slot (c, i) == -1)
      return -1;
  return 0;
}

bool
metacache_has_dirty (const struct metacache *c)
{
  return c->nr_dirty > 0;
}

void
metacache_forget (struct metacache *c, uint64_t offset)
{
  int32_t i = hash_find (c, offset);

  if (i == NO_SLOT)
    return;
  if (c->slots[i].dirty) {
    c->slots[i].dirty = false;
    c->nr_dirty--;
  }
  hash_remove (c, i);
  c->slots[i].offset = EMPTY_OFFSET;
  /* Reuse it first. */
  lru_unlink (c, i);
  c->slots[i].lru_next = NO_SLOT;
  c->slots[i].lru_prev = c->lru_tail;
  if (c->lru_tail != NO_SLOT)
    c->slots[c->lru_tail].lru_next = i;
  c->lru_tail = i;
  if (c->lru_head == NO_SLOT)
    c->lru_head = i;
}

void
metacache_get_stats (const struct metacache *c, struct metacache_stats *st)
{
  *st = c->stats;
}
