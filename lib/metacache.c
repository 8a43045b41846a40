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
  bool in_snapshot;             /* its copy in the snapshot is still due */
  uint64_t generation;          /* changes with every metacache_mark_dirty,
                                   so metacache_make_room can tell whether
                                   the table changed while it synced */
};

/* The dirty tables copied out by metacache_snapshot, for a flush to
 * write once what they point at is durable (see metacache.h).
 */
struct snapshot {
  uint8_t *tables;              /* nr copies of table_size bytes */
  int32_t *slot_of;             /* the slot each copy was taken from */
  uint64_t *offset_of;          /* and the table it held then */
  uint32_t nr;
  size_t bytes_alloc;
};

struct metacache {
  struct zq_image *img;
  const char *what;
  enum meta_kind kind;          /* of its tables, for image_pwrite */
  uint32_t nr_slots, table_size;
  uint8_t *tables;              /* nr_slots tables of table_size bytes */
  struct slot *slots;
  int32_t *buckets;
  uint32_t bucket_mask;
  int32_t lru_head, lru_tail;   /* most and least recently used */
  uint32_t nr_dirty;
  struct metacache *depends_on;
  struct snapshot snap;
  uint64_t written_epoch;       /* of the last table write, + 1; 0: none */
  uint64_t generations;         /* the last slot generation handed out */
  bool evicted_dirty;           /* an eviction had to write a table: from
                                   then on, metacache_make_room keeps the
                                   least recently used slots clean */
  /* A round of metacache_make_room is syncing without meta_lock: a miss
   * meanwhile waits for the slots it cleans (room_made, with meta_lock)
   * instead of syncing for the same slots again.
   */
  bool making_room;
  pthread_cond_t room_made;
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
  pthread_cond_init (&c->room_made, NULL);
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
  pthread_cond_destroy (&c->room_made);
  free (c->tables);
  free (c->slots);
  free (c->buckets);
  free (c->snap.tables);
  free (c->snap.slot_of);
  free (c->snap.offset_of);
  free (c);
}

void
metacache_set_kind (struct metacache *c, enum meta_kind kind)
{
  c->kind = kind;
}

void
metacache_set_dependency (struct metacache *c, struct metacache *depends_on)
{
  c->depends_on = depends_on;
}

/* Before any table of c reaches the disk, what it depends on must be
 * durable: the tables of the cache it depends on, and (covered by the
 * same sync) the guest data its entries point at.  A sync that a flush
 * has started without the lock does not count until it has ended.
 */
static int
prepare_write (struct metacache *c)
{
  if (c->depends_on == NULL)
    return 0;
  if (metacache_writeback (c->depends_on) == -1)
    return -1;
  if (needs_sync (c->img) && sync_file (c->img) == -1)
    return -1;
  return 0;
}

static int
pwrite_table (struct metacache *c, const uint8_t *table, uint64_t offset)
{
  if (image_pwrite (c->img, c->img->fd, c->kind, table, c->table_size,
                    offset) == -1) {
    int saved_errno = errno;
    if (!write_refused (c->img))
      zq_error ("%s: writing the %s at offset 0x%" PRIx64 ": %m",
                c->img->filename, c->what, offset);
    errno = saved_errno == ENOSPC ? ENOSPC : EIO;
    return -1;
  }
  c->written_epoch = c->img->sync_epoch + 1;
  return 0;
}

static int
write_slot (struct metacache *c, int32_t i)
{
  struct slot *s = &c->slots[i];

  if (pwrite_table (c, table_of (c, i), s->offset) == -1)
    return -1;
  /* The newest content is on disk: a snapshot copy, older, must not
   * overwrite it.
   */
  s->in_snapshot = false;
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
    /* Syncs under meta_lock when metacache_make_room has not cleaned the
     * slot beforehand (the first such eviction; more misses in one
     * critical section than it makes room for; a failed sync).
     */
    c->evicted_dirty = true;
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

  c->slots[i].generation = ++c->generations;
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

/* The slots metacache_make_room keeps clean: enough for the misses of
 * one critical section (a copy-on-write of a shared L2 table reads the
 * old table and creates the new one; a zero may then create another).
 */
#define ROOM_SLOTS 3

/* How many of the least recently used tables one round of
 * metacache_make_room cleans after its sync: a quarter of the cache, so
 * that random writes over an image larger than the cache covers pay one
 * sync for that many misses instead of one for every few, and at least
 * ROOM_SLOTS.  Bounded, as their list is on the stack.
 */
#define ROOM_BATCH_MAX 64

static uint32_t
room_batch (const struct metacache *c)
{
  uint32_t n = c->nr_slots / 4;

  return n < ROOM_SLOTS ? ROOM_SLOTS : n > ROOM_BATCH_MAX ? ROOM_BATCH_MAX : n;
}

/* A dirty table among the least recently used, as it was before the
 * sync that covers what it points at.
 */
struct room_due {
  int32_t slot;
  uint64_t offset, generation;
};

/* Rounds of metacache_make_room: a table changed during one sync is
 * tried again after the next, but not forever under a steady stream of
 * writes (the eviction then syncs under the lock).
 */
#define ROOM_ROUNDS 3

/* One round, when one of the ROOM_SLOTS least recently used tables is
 * dirty: the dirty ones among the room_batch least recently used are
 * written after a sync without meta_lock, if unchanged meanwhile.  1
 * when the next victims are clean now, 0 when some changed, -1 on
 * failure.
 */
static int
make_room_round (struct metacache *c)
{
  struct room_due due[ROOM_BATCH_MAX];
  uint32_t nr_due = 0, k, batch = room_batch (c);
  int32_t i;
  int done = 1;

  for (i = c->lru_tail, k = 0; i != NO_SLOT && k < batch;
       i = c->slots[i].lru_prev, k++) {
    /* Nothing to do while the next victims are clean. */
    if (k == ROOM_SLOTS && nr_due == 0)
      return 1;
    if (c->slots[i].dirty)
      due[nr_due++] = (struct room_due) { i, c->slots[i].offset,
                                          c->slots[i].generation };
  }
  if (nr_due == 0)
    return 1;
  /* As prepare_write, but the sync runs without meta_lock (the caller
   * holds nothing derived from the metadata yet): everything the tables
   * point at now is durable once it returns.
   */
  if (metacache_writeback (c->depends_on) == -1 ||
      (needs_sync (c->img) && sync_file_unlocked (c->img) == -1))
    return -1;
  /* Meanwhile others may have changed, written or dropped these tables:
   * only one still as it was is written, and it becomes clean.
   */
  for (k = 0; k < nr_due; k++) {
    const struct slot *s = &c->slots[due[k].slot];

    if (!s->dirty || s->offset != due[k].offset)
      continue;
    if (s->generation != due[k].generation)
      done = 0;
    else if (write_slot (c, due[k].slot) == -1)
      return -1;
  }
  return done;
}

void
metacache_make_room (struct metacache *c, uint64_t offset)
{
  int round;

  for (;;) {
    /* A hit evicts nothing: no sync for it, under the lock or not. */
    if (!c->evicted_dirty || c->depends_on == NULL ||
        (offset != 0 && hash_find (c, offset) != NO_SLOT))
      return;
    if (!c->making_room)
      break;
    /* Another section's round is cleaning the slots this one needs. */
    pthread_cond_wait (&c->room_made, &c->img->meta_lock);
  }
  /* Failures are left to the eviction, which reports them. */
  c->making_room = true;
  for (round = 0; round < ROOM_ROUNDS; round++)
    if (make_room_round (c) != 0)
      break;
  c->making_room = false;
  pthread_cond_broadcast (&c->room_made);
}

bool
metacache_has_dirty (const struct metacache *c)
{
  return c->nr_dirty > 0;
}

bool
metacache_table_durable (const struct metacache *c, uint64_t offset)
{
  int32_t i = hash_find (c, offset);

  /* A table not cached is not dirty: dirty ones leave only when written
   * (which sets written_epoch) or forgotten.
   */
  if (i != NO_SLOT && c->slots[i].dirty)
    return false;
  return c->written_epoch <= c->img->durable_epoch;
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
  c->slots[i].in_snapshot = false;     /* its cluster is no table now */
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

/* Room for n copies, grown (rarely: a flush with more dirty tables than
 * any before) but never past max_bytes.
 */
static int
snapshot_reserve (struct metacache *c, uint32_t n, size_t max_bytes)
{
  struct snapshot *snap = &c->snap;
  size_t need = (size_t) n * c->table_size;
  uint8_t *tables;

  if (need > max_bytes) {
    errno = E2BIG;
    return -1;
  }
  if (snap->slot_of == NULL) {
    snap->slot_of = malloc (c->nr_slots * sizeof *snap->slot_of);
    snap->offset_of = malloc (c->nr_slots * sizeof *snap->offset_of);
    if (snap->slot_of == NULL || snap->offset_of == NULL)
      return -1;
  }
  if (need <= snap->bytes_alloc)
    return 0;
  if (need < 2 * snap->bytes_alloc)
    need = 2 * snap->bytes_alloc < max_bytes ? 2 * snap->bytes_alloc
                                             : max_bytes;
  tables = realloc (snap->tables, need);
  if (tables == NULL)
    return -1;
  snap->tables = tables;
  snap->bytes_alloc = need;
  return 0;
}

int
metacache_snapshot (struct metacache *c, size_t max_bytes)
{
  struct snapshot *snap = &c->snap;
  uint32_t i;

  snap->nr = 0;
  if (c->nr_dirty == 0)
    return 0;
  if (snapshot_reserve (c, c->nr_dirty, max_bytes) == -1)
    return -1;
  for (i = 0; i < c->nr_slots; i++) {
    if (!c->slots[i].dirty)
      continue;
    memcpy (snap->tables + (size_t) snap->nr * c->table_size,
            table_of (c, i), c->table_size);
    snap->slot_of[snap->nr] = (int32_t) i;
    snap->offset_of[snap->nr] = c->slots[i].offset;
    snap->nr++;
    c->slots[i].in_snapshot = true;
  }
  return 0;
}

/* A copy still due: its slot still holds that table, dirty, and nothing
 * wrote the table since the snapshot (write_slot and forget clear the
 * mark).
 */
static bool
copy_is_due (const struct metacache *c, uint32_t k)
{
  const struct slot *s = &c->slots[c->snap.slot_of[k]];

  return s->in_snapshot && s->offset == c->snap.offset_of[k];
}

int
metacache_write_snapshot (struct metacache *c)
{
  struct snapshot *snap = &c->snap;
  int r = 0;
  uint32_t k;

  for (k = 0; k < snap->nr; k++) {
    int32_t i = snap->slot_of[k];
    const uint8_t *copy = snap->tables + (size_t) k * c->table_size;

    if (r == -1 || !copy_is_due (c, k))
      continue;
    /* Unchanged since the snapshot: this write makes the slot clean.
     * Changed: the newer entries may point at clusters whose data or
     * refcounts are not durable yet, so only the copy is written and
     * the slot stays dirty for a later write (eviction or flush), which
     * will honour the dependency.
     */
    if (memcmp (copy, table_of (c, i), c->table_size) == 0)
      r = write_slot (c, i);
    else if ((r = pwrite_table (c, copy, snap->offset_of[k])) == 0)
      c->stats.writebacks++;
  }
  metacache_drop_snapshot (c);
  return r;
}

void
metacache_drop_snapshot (struct metacache *c)
{
  uint32_t k;

  for (k = 0; k < c->snap.nr; k++)
    if (copy_is_due (c, k))
      c->slots[c->snap.slot_of[k]].in_snapshot = false;
  c->snap.nr = 0;
}

void
metacache_get_stats (const struct metacache *c, struct metacache_stats *st)
{
  *st = c->stats;
}
