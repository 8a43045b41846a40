/* Zone append through the public API (zq_zone_append): the engine
 * chooses each append's offset under the zone lock, so concurrent
 * appends to one zone tile it without overlap, each one's data lands
 * where it was told; an append is accepted while the appends before it
 * are still being written; the zone's limits refuse appends with the
 * errors the kernel expects (EIO when full or past the capacity, EINVAL
 * for a wrong zone or length).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "unit.h"

#define ZONE_SIZE (1024u * 1024)
#define CAPACITY (768u * 1024)
#define BLOCK 4096u
#define THREADS 8
#define PER_THREAD 24u          /* 8 * 24 blocks = 768 KiB: the capacity */

static struct zq_image *img;

/* The fault hook holds the write at hold_offset until released. */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  uint64_t hold_offset;
  bool held, released;
  bool after_entered;           /* the write just after it reached the hook */
} gate = {
  .lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER,
  .hold_offset = UINT64_MAX,
};

static int
fault_hook (void *opaque, uint64_t offset, uint64_t count)
{
  (void) opaque;
  (void) count;
  pthread_mutex_lock (&gate.lock);
  if (offset == gate.hold_offset) {
    gate.held = true;
    pthread_cond_broadcast (&gate.changed);
    while (!gate.released)
      pthread_cond_wait (&gate.changed, &gate.lock);
  }
  else if (offset == gate.hold_offset + BLOCK) {
    gate.after_entered = true;
    pthread_cond_broadcast (&gate.changed);
  }
  pthread_mutex_unlock (&gate.lock);
  return 0;
}

static uint64_t
zone_wp (uint32_t zi)
{
  struct zq_zone z;

  CHECK (zq_zone_report (img, zi, 1, &z) == 1);
  return z.write_pointer;
}

static enum zq_zone_cond
zone_cond (uint32_t zi)
{
  struct zq_zone z;

  CHECK (zq_zone_report (img, zi, 1, &z) == 1);
  return z.cond;
}

struct appender {
  pthread_t thread;
  uint64_t zone_start;
  unsigned id;
  uint64_t offsets[PER_THREAD];
  int failures;
};

/* Each block carries its writer and sequence number in every byte pair. */
static void
fill_block (uint8_t *buf, unsigned id, unsigned seq)
{
  unsigned j;

  for (j = 0; j < BLOCK; j += 2) {
    buf[j] = (uint8_t) (id + 1);
    buf[j + 1] = (uint8_t) seq;
  }
}

static void *
append_blocks (void *opaque)
{
  struct appender *a = opaque;
  uint8_t buf[BLOCK];
  unsigned i;

  for (i = 0; i < PER_THREAD; i++) {
    fill_block (buf, a->id, i);
    if (zq_zone_append (img, buf, BLOCK, a->zone_start, 0,
                        &a->offsets[i]) == -1)
      a->failures++;
  }
  return NULL;
}

/* THREADS threads append to zone zi until it is full: every block of
 * its capacity is written once, by the append that was told its offset.
 */
static void
test_concurrent_appends (uint32_t zi)
{
  uint64_t start = (uint64_t) zi * ZONE_SIZE;
  struct appender a[THREADS];
  static bool seen[CAPACITY / BLOCK];
  uint8_t buf[BLOCK], expect[BLOCK];
  unsigned t, i, overlaps = 0, misplaced = 0, bad_data = 0;

  memset (seen, 0, sizeof seen);
  for (t = 0; t < THREADS; t++) {
    a[t] = (struct appender) { .zone_start = start, .id = t };
    CHECK (pthread_create (&a[t].thread, NULL, append_blocks, &a[t]) == 0);
  }
  for (t = 0; t < THREADS; t++) {
    pthread_join (a[t].thread, NULL);
    CHECK (a[t].failures == 0);
  }
  for (t = 0; t < THREADS; t++)
    for (i = 0; i < PER_THREAD; i++) {
      uint64_t off = a[t].offsets[i];
      if (off < start || off >= start + CAPACITY || (off - start) % BLOCK) {
        misplaced++;
        continue;
      }
      if (seen[(off - start) / BLOCK])
        overlaps++;
      seen[(off - start) / BLOCK] = true;
      fill_block (expect, t, i);
      CHECK (zq_pread (img, buf, BLOCK, off) == 0);
      bad_data += memcmp (buf, expect, BLOCK) != 0;
    }
  CHECK (misplaced == 0);
  CHECK (overlaps == 0);
  CHECK (bad_data == 0);
  CHECK (zone_cond (zi) == ZQ_ZONE_COND_FULL);

  /* Full: the next append fails as a write would. */
  errno = 0;
  CHECK (zq_zone_append (img, buf, BLOCK, start, 0, &a[0].offsets[0]) == -1
         && errno == EIO);
}

/* An append goes after a plain write, and one that does not fit the
 * capacity is refused without moving the pointer.
 */
static void
test_after_write_and_capacity (uint32_t zi)
{
  uint64_t start = (uint64_t) zi * ZONE_SIZE, at = 0;
  static uint8_t buf[CAPACITY];

  memset (buf, 0x5a, sizeof buf);
  CHECK (zq_pwrite (img, buf, 3 * BLOCK, start, 0) == 0);
  CHECK (zq_zone_append (img, buf, BLOCK, start, ZQ_FUA, &at) == 0);
  CHECK (at == start + 3 * BLOCK);
  CHECK (zone_wp (zi) == start + 4 * BLOCK);
  CHECK (zq_pwrite (img, buf, CAPACITY - 5 * BLOCK, start + 4 * BLOCK, 0)
         == 0);
  errno = 0;
  CHECK (zq_zone_append (img, buf, BLOCK + 512, start, 0, &at) == -1
         && errno == EIO);
  CHECK (zone_wp (zi) == start + CAPACITY - BLOCK);
  CHECK (zq_zone_append (img, buf, BLOCK, start, 0, &at) == 0
         && at == start + CAPACITY - BLOCK);
  CHECK (zone_cond (zi) == ZQ_ZONE_COND_FULL);
}

/* What the kernel would never send, and the engine refuses anyway. */
static void
test_refused (void)
{
  uint8_t buf[2 * BLOCK] = { 0 };
  uint64_t at;

  errno = 0;
  CHECK (zq_zone_append (img, buf, BLOCK, 0, 0, &at) == -1
         && errno == EINVAL);   /* zone 0 is conventional */
  errno = 0;
  CHECK (zq_zone_append (img, buf, BLOCK, 3 * ZONE_SIZE + BLOCK, 0, &at)
         == -1 && errno == EINVAL);     /* not a zone start */
  errno = 0;
  CHECK (zq_zone_append (img, buf, 100, 3 * ZONE_SIZE, 0, &at) == -1
         && errno == EINVAL);   /* not whole sectors */
  errno = 0;
  CHECK (zq_zone_append (img, buf, 2 * BLOCK, 3 * ZONE_SIZE, 0, &at) == -1
         && errno == EINVAL);   /* longer than max_append_bytes (4096) */
  CHECK (zone_wp (3) == 3 * ZONE_SIZE);
}

struct held_append {
  pthread_t thread;
  uint64_t zone_start, at;
  int r;
};

static void *
append_one (void *opaque)
{
  struct held_append *h = opaque;
  uint8_t buf[BLOCK];

  memset (buf, 0x11, BLOCK);
  h->r = zq_zone_append (img, buf, BLOCK, h->zone_start, 0, &h->at);
  return NULL;
}

/* While the first append's data is held in the hook, a second append is
 * placed after it and its data written; it returns only once the first
 * is done, when the pointer has passed both.
 */
static void
test_pipelined (uint32_t zi)
{
  uint64_t start = (uint64_t) zi * ZONE_SIZE;
  struct held_append first = { .zone_start = start };
  struct held_append second = { .zone_start = start };
  struct timespec deadline;

  pthread_mutex_lock (&gate.lock);
  gate.hold_offset = start;
  gate.held = gate.released = gate.after_entered = false;
  pthread_mutex_unlock (&gate.lock);
  CHECK (pthread_create (&first.thread, NULL, append_one, &first) == 0);
  pthread_mutex_lock (&gate.lock);
  while (!gate.held)
    pthread_cond_wait (&gate.changed, &gate.lock);
  pthread_mutex_unlock (&gate.lock);

  CHECK (pthread_create (&second.thread, NULL, append_one, &second) == 0);
  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 2;
  pthread_mutex_lock (&gate.lock);
  while (!gate.after_entered &&
         pthread_cond_timedwait (&gate.changed, &gate.lock, &deadline) == 0)
    ;
  CHECK (gate.after_entered);
  pthread_mutex_unlock (&gate.lock);
  /* Both accepted, neither retired: the pointer has not moved yet. */
  CHECK (zone_wp (zi) == start);

  pthread_mutex_lock (&gate.lock);
  gate.released = true;
  pthread_cond_broadcast (&gate.changed);
  pthread_mutex_unlock (&gate.lock);
  pthread_join (first.thread, NULL);
  pthread_join (second.thread, NULL);
  CHECK (first.r == 0 && first.at == start);
  CHECK (second.r == 0 && second.at == start + BLOCK);
  CHECK (zone_wp (zi) == start + 2 * BLOCK);
  gate.hold_offset = UINT64_MAX;
}

/* 4 zones of 1 MiB, capacity 768 KiB, the first conventional. */
static bool
open_new_image (char *path, uint32_t max_append)
{
  struct zq_create_options co = {
    .size = 4 * (uint64_t) ZONE_SIZE, .zoned = true,
    .zone_size = ZONE_SIZE, .zone_capacity = CAPACITY,
    .conventional_zones = 1, .max_append_bytes = max_append,
  };
  struct zq_open_options oo = { 0 };
  int fd;

  fd = mkstemp (path);
  CHECK (fd >= 0);
  close (fd);
  co.filename = oo.filename = path;
  CHECK (zq_create (&co) == 0);
  img = zq_open (&oo);
  CHECK (img != NULL);
  if (img != NULL)
    img->zones->fault_hook = fault_hook;
  return img != NULL;
}

int
main (void)
{
  char path[] = "/tmp/unit-zone-append-XXXXXX";
  char small_path[] = "/tmp/unit-zone-append-XXXXXX";

  if (open_new_image (path, 0)) {
    test_concurrent_appends (1);
    CHECK (zq_zone_reset (img, 1) == 0);
    test_concurrent_appends (1);
    test_after_write_and_capacity (2);
    test_pipelined (3);
    CHECK (zq_close (img) == 0);
  }
  unlink (path);

  if (open_new_image (small_path, BLOCK)) {
    test_refused ();
    CHECK (zq_close (img) == 0);
  }
  unlink (small_path);
  UNIT_EXIT ();
}
