/* The L2 cache making room (metacache_make_room) against the syncs it
 * depends on, with powercut.c's gate holding one fdatasync at a time so
 * that the test can look at the cache while a sync is in progress:
 *
 *   - until an eviction has had to write a dirty table, making room
 *     does nothing; that eviction syncs with meta_lock held;
 *   - from then on, making room writes the refcount blocks back, syncs
 *     without meta_lock, and only then writes the dirty tables at the
 *     least recently used end, so that the next miss evicts a clean
 *     slot and syncs nothing under the lock;
 *   - a table changed while the lock was dropped is not written after
 *     that sync, which does not cover its new entries: it stays dirty
 *     until a sync that started after the change;
 *   - a section whose table is cached will not evict: no room is made;
 *   - a sync that fails leaves the tables dirty and the writes marked;
 *   - in a larger cache one sync cleans a quarter of it, and no room is
 *     made while the next victims are clean, so random writes over an
 *     image larger than the cache pay one sync for many misses;
 *   - a miss while another section's round syncs waits for that round
 *     instead of syncing again.
 *
 * Hits, misses and plain write-back on eviction: unit-l2-cache.c.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "powercut.h"
#include "unit.h"

#define TABLE 512
#define NR_TABLES 10            /* tables 0..9 in the file, then data */
#define BIG_FIRST 64            /* table indexes of the larger cache */
#define BIG_SLOTS 16            /* a round cleans 4 of them */
#define BIG_TABLES 24
#define DATA_OFFSET (16 * TABLE)
#define REFBLOCK (8 * TABLE)
/* Ample for a held sync to be reached on a loaded machine; the wait
 * ends as soon as it is, so only a failure waits this long.
 */
#define WAIT_SECONDS 10

static struct zq_image img;
static struct metacache *l2, *refblocks, *big;
static int shadow_fd = -1;
static unsigned sync_errors_logged;

/* The engine's messages: only a failed fdatasync is expected. */
static void
count_sync_errors (enum zq_log_level level, const char *message)
{
  if (level == ZQ_LOG_ERROR && strstr (message, "fdatasync") != NULL)
    sync_errors_logged++;
  else if (level != ZQ_LOG_DEBUG)
    fprintf (stderr, "unexpected message: %s\n", message);
}

static uint8_t
byte_at (int fd, uint64_t offset)
{
  uint8_t b = 0xee;
  CHECK (pread (fd, &b, 1, offset) == 1);
  return b;
}

/* What the file holds, and what stable storage holds (powercut.c). */
static uint8_t
in_file (uint64_t offset)
{
  return byte_at (img.fd, offset);
}

static uint8_t
durable (uint64_t offset)
{
  return byte_at (shadow_fd, offset);
}

/* Guest data that the dirty tables point at: written through the
 * engine's write path, which marks the file as unsynced.
 */
static void
write_data (uint8_t byte)
{
  uint8_t data[TABLE];

  memset (data, byte, sizeof data);
  CHECK (image_pwrite (&img, img.fd, META_NONE, data, sizeof data,
                       DATA_OFFSET) == 0);
}

static void
change_table (struct metacache *c, unsigned table, uint8_t byte)
{
  uint8_t *t;

  CHECK (metacache_get (c, table * TABLE, &t) == 0);
  t[0] = byte;
  metacache_mark_dirty (c, t);
}

/* A critical section run on a thread of its own, so that the test can
 * look while its sync is held.
 */
struct section {
  pthread_t thread;
  void (*fn) (struct section *);
  uint64_t syncs_before_miss, syncs_after_miss;
};

static void *
run_section (void *opaque)
{
  struct section *s = opaque;

  pthread_mutex_lock (&img.meta_lock);
  s->fn (s);
  pthread_mutex_unlock (&img.meta_lock);
  return NULL;
}

static void
start_section (struct section *s, void (*fn) (struct section *))
{
  s->fn = fn;
  CHECK (pthread_create (&s->thread, NULL, run_section, s) == 0);
}

/* A miss, recording the syncs started around it. */
static void
miss (struct section *s, unsigned table)
{
  uint8_t *t;

  s->syncs_before_miss = img.sync_epoch;
  CHECK (metacache_get (l2, table * TABLE, &t) == 0 && t[0] == table);
  s->syncs_after_miss = img.sync_epoch;
}

static void
miss_on_4 (struct section *s)
{
  miss (s, 4);
}

static void
make_room_then_miss_on_5 (struct section *s)
{
  metacache_make_room (l2, 5 * TABLE);
  /* Another request's data, written meanwhile without the lock. */
  write_data (0xd3);
  miss (s, 5);
}

/* Whether meta_lock is free while the sync at the gate is held; if so,
 * the caller now holds it.
 */
static bool
lock_free_during_sync (void)
{
  CHECK (powercut_sync_held (WAIT_SECONDS));
  return pthread_mutex_trylock (&img.meta_lock) == 0;
}

/* Lets the held sync go, and holds the next one, once the first has
 * left the gate.  meta_lock held, so the section cannot start the next
 * sync before the gate is armed again.
 */
static void
release_and_hold_next (void)
{
  powercut_release_sync ();
  while (powercut_sync_held (0))
    usleep (1000);
  powercut_hold_sync (0, UINT64_MAX);
}

static void
test_first_dirty_eviction (void)
{
  struct metacache_stats st;
  struct section s;
  uint64_t syncs;

  /* Tables 1, 2 and 3 fill the cache, dirty, pointing at new data. */
  change_table (l2, 1, 0x11);
  change_table (l2, 2, 0x12);
  change_table (l2, 3, 0x13);
  write_data (0xd1);

  /* No eviction has had to write yet: making room leaves them alone. */
  pthread_mutex_lock (&img.meta_lock);
  syncs = img.sync_epoch;
  metacache_make_room (l2, 4 * TABLE);
  CHECK (img.sync_epoch == syncs);
  CHECK (in_file (1 * TABLE) == 1);
  pthread_mutex_unlock (&img.meta_lock);

  /* A miss evicts table 1, dirty: the data first, synced with the lock
   * held, then the table.
   */
  powercut_hold_sync (0, UINT64_MAX);
  start_section (&s, miss_on_4);
  if (lock_free_during_sync ()) {
    CHECK (!"meta_lock free during the sync of an eviction");
    pthread_mutex_unlock (&img.meta_lock);
  }
  CHECK (in_file (1 * TABLE) == 1);
  powercut_release_sync ();
  CHECK (pthread_join (s.thread, NULL) == 0);
  CHECK (s.syncs_after_miss == s.syncs_before_miss + 1);
  CHECK (in_file (1 * TABLE) == 0x11);
  CHECK (durable (DATA_OFFSET) == 0xd1);
  metacache_get_stats (l2, &st);
  CHECK (st.evictions == 1 && st.writebacks == 1);
}

static void
test_make_room (void)
{
  struct metacache_stats before, after;
  struct section s;
  uint64_t syncs;

  /* The cache holds 4 (most recent), 3 and 2: all three dirty, with a
   * refcount block they depend on.
   */
  change_table (l2, 4, 0x14);
  change_table (refblocks, 8, 0x88);
  write_data (0xd2);
  metacache_get_stats (l2, &before);
  syncs = img.sync_epoch;

  powercut_hold_sync (0, UINT64_MAX);
  start_section (&s, make_room_then_miss_on_5);

  /* First sync: meta_lock is free, the refcount block is written, the
   * tables are not yet, and the data is not durable (needs_sync says so
   * though the sync has taken the mark).
   */
  if (!lock_free_during_sync ()) {
    CHECK (!"meta_lock free during the first sync of making room");
    goto out;
  }
  CHECK (in_file (REFBLOCK) == 0x88);
  CHECK (in_file (2 * TABLE) == 2 && in_file (3 * TABLE) == 3 &&
         in_file (4 * TABLE) == 4);
  CHECK (needs_sync (&img));
  /* Another request changes table 3 meanwhile: that sync does not cover
   * what its new entry would point at.
   */
  change_table (l2, 3, 0x23);
  release_and_hold_next ();
  pthread_mutex_unlock (&img.meta_lock);

  /* Second sync: the unchanged tables were written after the first,
   * the changed one is still dirty and not in the file.
   */
  if (!lock_free_during_sync ()) {
    CHECK (!"meta_lock free during the second sync of making room");
    goto out;
  }
  CHECK (in_file (2 * TABLE) == 0x12 && in_file (4 * TABLE) == 0x14);
  CHECK (in_file (3 * TABLE) == 3);
  CHECK (metacache_has_dirty (l2));
  CHECK (durable (DATA_OFFSET) == 0xd2);
  CHECK (durable (REFBLOCK) == 0x88);
  pthread_mutex_unlock (&img.meta_lock);
  powercut_release_sync ();
  CHECK (pthread_join (s.thread, NULL) == 0);

  /* Written after the second sync; the miss that followed evicted a
   * clean table and synced nothing, though data had been written.
   */
  CHECK (in_file (3 * TABLE) == 0x23);
  CHECK (!metacache_has_dirty (l2));
  CHECK (img.sync_epoch == syncs + 2);
  CHECK (s.syncs_after_miss == s.syncs_before_miss);
  metacache_get_stats (l2, &after);
  CHECK (after.writebacks == before.writebacks + 3);
  CHECK (after.evictions == before.evictions + 1);
  CHECK (after.misses == before.misses + 1);
  return;

 out:
  powercut_release_sync ();
  CHECK (pthread_join (s.thread, NULL) == 0);
}

static void
test_hit_and_failed_sync (void)
{
  uint64_t syncs;

  /* Clean tables: nothing to do, no sync. */
  pthread_mutex_lock (&img.meta_lock);
  syncs = img.sync_epoch;
  metacache_make_room (l2, 6 * TABLE);
  CHECK (img.sync_epoch == syncs);

  /* The cache holds 4 (most recent, now dirty), 5 and 3. */
  change_table (l2, 4, 0x24);
  pthread_mutex_unlock (&img.meta_lock);
  write_data (0xd4);
  pthread_mutex_lock (&img.meta_lock);

  /* A section that will hit evicts nothing: no room made. */
  metacache_make_room (l2, 4 * TABLE);
  CHECK (img.sync_epoch == syncs);
  CHECK (in_file (4 * TABLE) == 0x14);

  /* One that will create a table, its sync failing. */
  powercut_fail_syncs (1);
  metacache_make_room (l2, 0);
  powercut_fail_syncs (0);
  CHECK (sync_errors_logged == 1);
  CHECK (img.sync_epoch > syncs);
  CHECK (metacache_has_dirty (l2));
  CHECK (in_file (4 * TABLE) == 0x14);
  CHECK (needs_sync (&img));
  CHECK (img.unsynced_writes);

  /* The next one succeeds. */
  metacache_make_room (l2, 0);
  CHECK (!metacache_has_dirty (l2));
  CHECK (in_file (4 * TABLE) == 0x24);
  CHECK (durable (DATA_OFFSET) == 0xd4);
  CHECK (sync_errors_logged == 1);
  pthread_mutex_unlock (&img.meta_lock);
}

/* The larger cache's table i; each holds i in every byte at first. */
static uint64_t
big_table (unsigned i)
{
  return (uint64_t) (BIG_FIRST + i) * TABLE;
}

static void
big_change (unsigned i)
{
  uint8_t *t;

  CHECK (metacache_get (big, big_table (i), &t) == 0);
  t[0] = 0x80 | i;
  metacache_mark_dirty (big, t);
}

static void
big_miss (unsigned i)
{
  uint8_t *t;

  CHECK (metacache_get (big, big_table (i), &t) == 0 && t[0] == i);
}

static bool
big_written (unsigned i)
{
  return in_file (big_table (i)) == (0x80 | i);
}

static void
test_batch (void)
{
  uint64_t syncs;
  unsigned i;

  pthread_mutex_lock (&img.meta_lock);
  /* All 16 slots dirty; the miss on 16 evicts table 0, syncing under
   * the lock (the first dirty eviction).  The least recently used are
   * now 1, 2, 3, ...
   */
  for (i = 0; i < BIG_SLOTS; i++)
    big_change (i);
  pthread_mutex_unlock (&img.meta_lock);
  write_data (0xd5);
  pthread_mutex_lock (&img.meta_lock);
  big_miss (16);
  CHECK (big_written (0));

  /* One sync, then tables 1-4 written, 5 and later left dirty. */
  syncs = img.sync_epoch;
  metacache_make_room (big, big_table (17));
  CHECK (img.sync_epoch == syncs + 1);
  for (i = 1; i <= 4; i++)
    CHECK (big_written (i));
  CHECK (!big_written (5));

  /* The miss on 17 evicts 1; 2, 3 and 4 are next, clean: no room to
   * make, though 5 is dirty and data was written meanwhile.
   */
  big_miss (17);
  write_data (0xd6);
  syncs = img.sync_epoch;
  metacache_make_room (big, big_table (18));
  CHECK (img.sync_epoch == syncs);
  big_miss (18);
  /* 3, 4 and 5 are next, 5 dirty: a round, which writes 5 and 6. */
  metacache_make_room (big, big_table (19));
  CHECK (img.sync_epoch == syncs + 1);
  CHECK (big_written (5) && big_written (6) && !big_written (7));
  pthread_mutex_unlock (&img.meta_lock);
}

static void
make_room_on_22 (struct section *s)
{
  metacache_make_room (big, big_table (22));
}

static void
test_shared_round (void)
{
  struct section a, b;
  uint64_t syncs;

  /* The misses evict 3, 4 and 5; next are 6 (clean), then 7, 8, 9 and
   * the rest, dirty since test_batch.
   */
  pthread_mutex_lock (&img.meta_lock);
  big_miss (19);
  big_miss (20);
  big_miss (21);
  syncs = img.sync_epoch;
  pthread_mutex_unlock (&img.meta_lock);
  write_data (0xd7);

  /* Section a's round holds its sync at the gate; section b, a miss of
   * its own meanwhile, must wait for a's round, not sync the same
   * tables again.  b is given time to reach its wait: were it late, it
   * would find the victims clean and sync nothing either way.
   */
  powercut_hold_sync (0, UINT64_MAX);
  start_section (&a, make_room_on_22);
  CHECK (powercut_sync_held (WAIT_SECONDS));
  start_section (&b, make_room_on_22);
  usleep (200 * 1000);
  powercut_release_sync ();
  CHECK (pthread_join (a.thread, NULL) == 0);
  CHECK (pthread_join (b.thread, NULL) == 0);
  CHECK (img.sync_epoch == syncs + 1);
  CHECK (big_written (7) && big_written (8) && big_written (9));
  CHECK (!big_written (10));
  CHECK (durable (DATA_OFFSET) == 0xd7);
}

int
main (void)
{
  char path[] = "/tmp/unit-metacache-XXXXXX";
  char shadow[sizeof path + 8];
  uint8_t fill[TABLE];
  int i;

  zq_set_log_fn (count_sync_errors);
  img.fd = mkstemp (path);
  CHECK (img.fd >= 0);
  img.filename = path;
  snprintf (shadow, sizeof shadow, "%s.shadow", path);
  pthread_mutex_init (&img.meta_lock, NULL);

  /* Each table holds its own index in every byte. */
  for (i = 0; i < NR_TABLES; i++) {
    memset (fill, i, sizeof fill);
    CHECK (pwrite (img.fd, fill, TABLE, i * TABLE) == TABLE);
  }
  for (i = 0; i < BIG_TABLES; i++) {
    memset (fill, i, sizeof fill);
    CHECK (pwrite (img.fd, fill, TABLE, big_table (i)) == TABLE);
  }
  memset (fill, 0, sizeof fill);
  CHECK (pwrite (img.fd, fill, TABLE, DATA_OFFSET) == TABLE);

  l2 = metacache_new (&img, "L2 table", 3, TABLE);
  refblocks = metacache_new (&img, "refcount block", 2, TABLE);
  big = metacache_new (&img, "L2 table", BIG_SLOTS, TABLE);
  CHECK (l2 != NULL && refblocks != NULL && big != NULL);
  metacache_set_dependency (l2, refblocks);
  metacache_set_dependency (big, refblocks);
  CHECK (powercut_start (path, shadow) == 0);
  shadow_fd = open (shadow, O_RDONLY);
  CHECK (shadow_fd >= 0);

  if (l2 != NULL && refblocks != NULL && big != NULL && shadow_fd >= 0) {
    test_first_dirty_eviction ();
    test_make_room ();
    test_hit_and_failed_sync ();
    test_batch ();
    test_shared_round ();
  }

  powercut_stop ();
  if (shadow_fd >= 0)
    close (shadow_fd);
  metacache_free (l2);
  metacache_free (refblocks);
  metacache_free (big);
  close (img.fd);
  unlink (path);
  unlink (shadow);
  UNIT_EXIT ();
}
