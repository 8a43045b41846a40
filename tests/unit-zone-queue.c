/* Concurrent writes to one sequential zone through the public API
 * (lib/zqcow2.h): requests that arrive out of order are queued and
 * accepted in write-pointer order; accepted writes run concurrently while
 * the pointer advances over them in order; a failed write takes the
 * writes accepted after it down with it; a reset waits for the writes in
 * flight; and the pointer on disk never passes a write in flight.  The
 * zone layer's fault hook (lib/zones.h) holds or fails chosen writes.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "zoned-format.h"
#include "unit.h"

#define ZONE_SIZE (4u * 1024 * 1024)
#define BLOCK 4096u
#define THREADS 8
#define BLOCKS 512u             /* 2 MiB of zone 1 */

static struct zq_image *img;
static const char *img_path;

/* The fault hook's orders and what it saw: writes at hold_offset wait
 * in the hook until released, writes at fail_offset fail with EIO, and
 * every write that reaches the hook is counted by its block.
 */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  uint64_t base, hold_offset, fail_offset;
  bool released;
  unsigned entered[64];
} gate = {
  .lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER,
  .hold_offset = UINT64_MAX, .fail_offset = UINT64_MAX,
};

static int
fault_hook (void *opaque, uint64_t offset, uint64_t count)
{
  uint64_t block = (offset - gate.base) / BLOCK;
  int err;

  (void) opaque;
  (void) count;
  pthread_mutex_lock (&gate.lock);
  if (offset >= gate.base && block < 64)
    gate.entered[block]++;
  pthread_cond_broadcast (&gate.changed);
  while (offset == gate.hold_offset && !gate.released)
    pthread_cond_wait (&gate.changed, &gate.lock);
  err = offset == gate.fail_offset ? EIO : 0;
  pthread_mutex_unlock (&gate.lock);
  return err;
}

/* Arms the gate for the blocks of a zone from base: hold the write of
 * block hold and fail that of block fail (UINT64_MAX: none).
 */
static void
arm_gate (uint64_t base, uint64_t hold, uint64_t fail)
{
  pthread_mutex_lock (&gate.lock);
  gate.base = base;
  gate.hold_offset = hold == UINT64_MAX ? hold : base + hold * BLOCK;
  gate.fail_offset = fail == UINT64_MAX ? fail : base + fail * BLOCK;
  gate.released = false;
  memset (gate.entered, 0, sizeof gate.entered);
  pthread_mutex_unlock (&gate.lock);
}

static void
release_gate (void)
{
  pthread_mutex_lock (&gate.lock);
  gate.released = true;
  pthread_cond_broadcast (&gate.changed);
  pthread_mutex_unlock (&gate.lock);
}

/* Whether the writes of blocks [first, end) all reach the hook within 2
 * seconds.
 */
static bool
wait_entered (unsigned first, unsigned end)
{
  struct timespec deadline;
  bool all = false;
  unsigned i;

  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 2;
  pthread_mutex_lock (&gate.lock);
  for (;;) {
    for (all = true, i = first; i < end; i++)
      all = all && gate.entered[i] > 0;
    if (all ||
        pthread_cond_timedwait (&gate.changed, &gate.lock, &deadline) != 0)
      break;
  }
  pthread_mutex_unlock (&gate.lock);
  return all;
}

static uint8_t
block_byte (uint64_t offset)
{
  return (uint8_t) (offset / BLOCK * 7 + 1);
}

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t
zone_wp (uint32_t zi)
{
  struct zq_zone z;

  CHECK (zq_zone_report (img, zi, 1, &z) == 1);
  return z.write_pointer;
}

struct writer {
  pthread_t thread;
  uint64_t base;
  unsigned first, step, count;
  int failures;
  int last_errno;
  double returned;              /* when its last write returned */
  bool done;                    /* returned is set (atomic) */
};

/* One write of wr's, its failure counted. */
static void
writer_pwrite (struct writer *wr, const void *buf, size_t len,
               uint64_t offset)
{
  if (zq_pwrite (img, buf, len, offset, 0) == -1) {
    wr->failures++;
    wr->last_errno = errno;
  }
}

/* wr's thread is about to return: stamp the time, then say so. */
static void
writer_finished (struct writer *wr)
{
  wr->returned = now ();
  __atomic_store_n (&wr->done, true, __ATOMIC_RELEASE);
}

/* Writes blocks first, first + step, ... of the zone at base: with
 * THREADS such writers, the zone's blocks arrive interleaved and mostly
 * out of order, and each must wait for the ones before it.
 */
static void *
write_blocks (void *opaque)
{
  struct writer *wr = opaque;
  uint8_t buf[BLOCK];
  unsigned i;

  for (i = wr->first; i < wr->count; i += wr->step) {
    uint64_t offset = wr->base + (uint64_t) i * BLOCK;
    memset (buf, block_byte (offset), BLOCK);
    writer_pwrite (wr, buf, BLOCK, offset);
  }
  writer_finished (wr);
  return NULL;
}

/* One thread writing block i of the zone at base. */
static void
start_block_writer (struct writer *wr, uint64_t base, unsigned i)
{
  *wr = (struct writer) { .base = base, .first = i, .step = 1,
                          .count = i + 1 };
  CHECK (pthread_create (&wr->thread, NULL, write_blocks, wr) == 0);
}

static bool
reads_zero (uint64_t offset, uint64_t count)
{
  uint8_t buf[BLOCK];
  uint64_t done, j;

  for (done = 0; done < count; done += BLOCK) {
    if (zq_pread (img, buf, BLOCK, offset + done) == -1)
      return false;
    for (j = 0; j < BLOCK; j++)
      if (buf[j] != 0)
        return false;
  }
  return true;
}

/* The write pointer in the image file's table. */
static uint64_t
zone_wp_on_disk (uint32_t zi)
{
  const struct zq_zone_geometry *g = &img->zones->geometry;
  uint8_t entry[8];
  uint64_t wp = 0;
  int fd = open (img_path, O_RDONLY), i;

  CHECK (fd >= 0);
  CHECK (pread (fd, entry, 8, g->zonedmeta_offset + zi * 8) == 8);
  close (fd);
  for (i = 0; i < 8; i++)
    wp = wp << 8 | entry[i];
  return wp;
}

static void
check_blocks (uint64_t base, unsigned count)
{
  uint8_t buf[BLOCK];
  unsigned i, j, bad = 0;

  for (i = 0; i < count; i++) {
    uint64_t offset = base + (uint64_t) i * BLOCK;
    CHECK (zq_pread (img, buf, BLOCK, offset) == 0);
    for (j = 0; j < BLOCK; j++)
      bad += buf[j] != block_byte (offset);
  }
  CHECK (bad == 0);
}

/* THREADS threads write one zone's blocks at consecutive offsets. */
static void
test_interleaved_writers (uint32_t zi)
{
  struct writer wr[THREADS];
  uint64_t base = (uint64_t) zi * ZONE_SIZE;
  int t, failures = 0;

  for (t = 0; t < THREADS; t++) {
    wr[t] = (struct writer) { .base = base, .first = t, .step = THREADS,
                              .count = BLOCKS };
    CHECK (pthread_create (&wr[t].thread, NULL, write_blocks, &wr[t]) == 0);
  }
  for (t = 0; t < THREADS; t++) {
    pthread_join (wr[t].thread, NULL);
    failures += wr[t].failures;
  }
  CHECK (failures == 0);
  CHECK (zone_wp (zi) == base + BLOCKS * BLOCK);
  check_blocks (base, BLOCKS);
}

/* Behind the pointer: EIO at once.  Ahead of it with nothing to fill
 * the gap: EIO after the wait (zone-io.c), and the pointer does not move.
 */
static void
test_out_of_place (uint32_t zi)
{
  uint64_t wp = zone_wp (zi);
  uint8_t buf[BLOCK] = { 0 };
  double t0;

  t0 = now ();
  errno = 0;
  CHECK (zq_pwrite (img, buf, BLOCK, wp - BLOCK, 0) == -1 && errno == EIO);
  CHECK (now () - t0 < 0.5);

  t0 = now ();
  errno = 0;
  CHECK (zq_pwrite (img, buf, BLOCK, wp + BLOCK, 0) == -1 && errno == EIO);
  CHECK (now () - t0 >= 0.9);
  CHECK (zone_wp (zi) == wp);
}

/* A write at the end of the accepted ones starts while the one before
 * it is still being written, but returns only after it; a flush in
 * between writes a pointer on disk that does not pass the write still
 * in flight.
 */
static void
test_pipelined (uint32_t zi)
{
  uint64_t base = zone_wp (zi);
  struct writer a, b;
  double released;

  arm_gate (base, 0, UINT64_MAX);
  start_block_writer (&a, base, 0);
  CHECK (wait_entered (0, 1));
  start_block_writer (&b, base, 1);
  CHECK (wait_entered (1, 2));          /* one write at a time: fails */
  usleep (100 * 1000);
  CHECK (zone_wp (zi) == base);         /* b is written, not retired */
  CHECK (zq_flush (img) == 0);
  CHECK (zone_wp_on_disk (zi) == base);
  released = now ();
  release_gate ();
  pthread_join (a.thread, NULL);
  pthread_join (b.thread, NULL);
  CHECK (a.failures == 0 && b.failures == 0);
  CHECK (b.returned >= released);
  CHECK (zone_wp (zi) == base + 2 * BLOCK);
  CHECK (zq_flush (img) == 0);
  CHECK (zone_wp_on_disk (zi) == base + 2 * BLOCK);
  check_blocks (base, 2);
}

/* The write at the pointer fails while the two after it are in flight:
 * all three fail with EIO, the pointer stays, the data the later two
 * wrote reads as zeroes, and writing resumes at the pointer.
 */
static void
test_failure_dooms_later_writes (uint32_t zi)
{
  uint64_t base = zone_wp (zi);
  struct writer w[3];
  int i;

  arm_gate (base, 0, 0);
  start_block_writer (&w[0], base, 0);
  CHECK (wait_entered (0, 1));
  start_block_writer (&w[1], base, 1);
  start_block_writer (&w[2], base, 2);
  CHECK (wait_entered (1, 3));
  release_gate ();
  for (i = 0; i < 3; i++) {
    pthread_join (w[i].thread, NULL);
    CHECK (w[i].failures == 1 && w[i].last_errno == EIO);
  }
  CHECK (zone_wp (zi) == base);
  CHECK (reads_zero (base, 3 * BLOCK));

  arm_gate (base, UINT64_MAX, UINT64_MAX);
  start_block_writer (&w[0], base, 0);
  pthread_join (w[0].thread, NULL);
  CHECK (w[0].failures == 0);
  CHECK (zone_wp (zi) == base + BLOCK);
  check_blocks (base, 1);
  CHECK (reads_zero (base + BLOCK, 2 * BLOCK));
}

struct resetter {
  pthread_t thread;
  uint32_t zone;
  int r;
  bool write_was_released;      /* the gate had let the write go on */
};

/* Resets a zone and notes whether the write held at the gate had been
 * let go by the time the reset returned.
 */
static void *
reset_zone (void *opaque)
{
  struct resetter *rs = opaque;

  rs->r = zq_zone_reset (img, rs->zone);
  pthread_mutex_lock (&gate.lock);
  rs->write_was_released = gate.released;
  pthread_mutex_unlock (&gate.lock);
  return NULL;
}

/* A reset waits for the write in flight, then empties the zone: started
 * while the write is held, it returns only after the write was let go.
 */
static void
test_reset_waits (uint32_t zi)
{
  uint64_t base = zone_wp (zi);
  struct resetter rs = { .zone = zi };
  struct writer a;

  arm_gate (base, 0, UINT64_MAX);
  start_block_writer (&a, base, 0);
  CHECK (wait_entered (0, 1));
  CHECK (pthread_create (&rs.thread, NULL, reset_zone, &rs) == 0);
  /* Time for a reset that does not wait to return while the write is
   * still held; one that waits cannot return before release_gate.
   */
  usleep (200 * 1000);
  release_gate ();
  pthread_join (rs.thread, NULL);
  CHECK (rs.r == 0);
  CHECK (rs.write_was_released);
  pthread_join (a.thread, NULL);
  CHECK (a.failures == 0);
  CHECK (zone_wp (zi) == (uint64_t) zi * ZONE_SIZE);
  CHECK (reads_zero (base, BLOCK));
}

static enum zq_zone_cond
zone_cond (uint32_t zi)
{
  struct zq_zone z;

  CHECK (zq_zone_report (img, zi, 1, &z) == 1);
  return z.cond;
}

struct finisher {
  pthread_t thread;
  uint64_t offset;
  int r, err;
};

/* Finish: write zeroes from offset to the zone end. */
static void *
finish_zone (void *opaque)
{
  struct finisher *f = opaque;

  f->r = zq_zero (img, ZONE_SIZE - f->offset % ZONE_SIZE, f->offset, 0);
  f->err = errno;
  return NULL;
}

/* A finish accepted behind a write in flight makes the zone full once
 * both complete; if that write fails, the finish fails too and the zone
 * stays open at the pointer.
 */
static void
test_pipelined_finish (uint32_t zi)
{
  uint64_t base = (uint64_t) zi * ZONE_SIZE;
  struct finisher f = { .offset = base + BLOCK };
  struct writer a;
  int pass;

  for (pass = 0; pass < 2; pass++) {
    bool fail = pass == 0;

    arm_gate (base, 0, fail ? 0 : UINT64_MAX);
    start_block_writer (&a, base, 0);
    CHECK (wait_entered (0, 1));
    CHECK (pthread_create (&f.thread, NULL, finish_zone, &f) == 0);
    CHECK (wait_entered (1, 2));
    release_gate ();
    pthread_join (a.thread, NULL);
    pthread_join (f.thread, NULL);
    if (fail) {
      CHECK (a.failures == 1 && f.r == -1 && f.err == EIO);
      CHECK (zone_wp (zi) == base);
      CHECK (zone_cond (zi) == ZQ_ZONE_COND_IMP_OPEN);
    }
    else {
      CHECK (a.failures == 0 && f.r == 0);
      CHECK (zone_cond (zi) == ZQ_ZONE_COND_FULL);
      CHECK (zone_wp (zi) == base + ZONE_SIZE);
      check_blocks (base, 1);
      CHECK (reads_zero (base + BLOCK, 4 * BLOCK));
    }
  }
}

/* With one zone open at most, a write into another zone closes the one
 * whose write is in flight instead of failing with ENOSPC; that write
 * still completes.  If it fails instead, the zone it left closed with
 * nothing written is empty again.
 */
static void
test_open_limit (void)
{
  uint64_t z1 = ZONE_SIZE, z2 = 2 * (uint64_t) ZONE_SIZE;
  uint8_t buf[BLOCK];
  struct writer a;

  memset (buf, block_byte (z2), BLOCK);
  arm_gate (z1, 0, UINT64_MAX);
  start_block_writer (&a, z1, 0);
  CHECK (wait_entered (0, 1));
  CHECK (zq_pwrite (img, buf, BLOCK, z2, 0) == 0);
  CHECK (zone_cond (1) == ZQ_ZONE_COND_CLOSED);
  CHECK (zone_cond (2) == ZQ_ZONE_COND_IMP_OPEN);
  release_gate ();
  pthread_join (a.thread, NULL);
  CHECK (a.failures == 0);
  CHECK (zone_wp (1) == z1 + BLOCK && zone_cond (1) == ZQ_ZONE_COND_CLOSED);
  check_blocks (z1, 1);

  CHECK (zq_zone_reset (img, 1) == 0);
  arm_gate (z1, 0, 0);
  start_block_writer (&a, z1, 0);
  CHECK (wait_entered (0, 1));
  memset (buf, block_byte (z2 + BLOCK), BLOCK);
  CHECK (zq_pwrite (img, buf, BLOCK, z2 + BLOCK, 0) == 0);
  CHECK (zone_cond (1) == ZQ_ZONE_COND_CLOSED);
  release_gate ();
  pthread_join (a.thread, NULL);
  CHECK (a.failures == 1 && a.last_errno == EIO);
  CHECK (zone_wp (1) == z1 && zone_cond (1) == ZQ_ZONE_COND_EMPTY);
  check_blocks (z2, 2);
}

/* Whether wr's thread returns within two seconds. */
static bool
wait_returned (struct writer *wr)
{
  double deadline = now () + 2;

  while (!__atomic_load_n (&wr->done, __ATOMIC_ACQUIRE) && now () < deadline)
    usleep (10 * 1000);
  return __atomic_load_n (&wr->done, __ATOMIC_ACQUIRE);
}

/* Writes queued behind a late one are accepted together when it is,
 * by the thread that accepts it (zone-io.c, accept_queued): with the
 * late write held in the hook, the three queued after it reach the hook
 * too, and none of them returns before it is released.
 */
static void
test_queued_accepted_together (uint32_t zi)
{
  uint64_t base = zone_wp (zi);
  struct writer late, queued[3];
  unsigned i;

  arm_gate (base, 0, UINT64_MAX);
  for (i = 0; i < 3; i++)
    start_block_writer (&queued[i], base, i + 1);
  usleep (100 * 1000);                  /* all three wait for block 0 */
  pthread_mutex_lock (&gate.lock);
  CHECK (gate.entered[1] == 0 && gate.entered[2] == 0 && gate.entered[3] == 0);
  pthread_mutex_unlock (&gate.lock);
  start_block_writer (&late, base, 0);
  CHECK (wait_entered (0, 4));
  /* Their data is written; they return only once the late write,
   * still held, has moved the pointer past them.
   */
  usleep (100 * 1000);
  for (i = 0; i < 3; i++)
    CHECK (!__atomic_load_n (&queued[i].done, __ATOMIC_ACQUIRE));
  release_gate ();
  pthread_join (late.thread, NULL);
  for (i = 0; i < 3; i++) {
    pthread_join (queued[i].thread, NULL);
    CHECK (queued[i].failures == 0);
  }
  CHECK (late.failures == 0);
  CHECK (zone_wp (zi) == base + 4 * BLOCK);
  check_blocks (base, 4);
}

/* The write of two blocks ending past the capacity. */
static void *
write_past_capacity (void *opaque)
{
  struct writer *wr = opaque;
  uint8_t buf[2 * BLOCK];

  memset (buf, 0x5a, sizeof buf);
  writer_pwrite (wr, buf, sizeof buf, wr->base);
  writer_finished (wr);
  return NULL;
}

/* A write queued behind a late one whose turn comes but that goes past
 * the zone's capacity is not accepted with it: it is refused at once,
 * with EIO, while the late one is still being written, and the pointer
 * stops where the late one ends.
 */
static void
test_queued_past_capacity (uint32_t zi, uint64_t capacity)
{
  uint64_t start = (uint64_t) zi * ZONE_SIZE;
  uint64_t late_at = start + capacity - 2 * BLOCK;
  uint8_t *fill = calloc (1, capacity);
  struct writer late, past = { .base = late_at + BLOCK };

  CHECK (fill != NULL);
  CHECK (zone_wp (zi) == start);
  CHECK (zq_pwrite (img, fill, late_at - start, start, 0) == 0);
  free (fill);
  arm_gate (late_at, 0, UINT64_MAX);
  CHECK (pthread_create (&past.thread, NULL, write_past_capacity, &past) == 0);
  usleep (100 * 1000);                  /* it waits for the late one */
  start_block_writer (&late, late_at, 0);
  CHECK (wait_entered (0, 1));
  CHECK (wait_returned (&past));
  CHECK (past.failures == 1 && past.last_errno == EIO);
  release_gate ();
  pthread_join (past.thread, NULL);
  pthread_join (late.thread, NULL);
  CHECK (late.failures == 0);
  CHECK (zone_wp (zi) == late_at + BLOCK);
}

/* A write ahead of the pointer whose wait runs out just as the write it
 * waits for arrives: each time, either the write before it accepts it on
 * its behalf and it succeeds, or it times out and fails with EIO, and
 * the pointer says which; never accepted and refused both, which would
 * leave a write in flight forever and hang the zone.
 */
static void
test_timeout_races_acceptance (uint32_t zi, unsigned rounds)
{
  uint64_t wp = zone_wp (zi);
  uint8_t buf[BLOCK];
  unsigned i, accepted = 0;

  img->zones->ahead_wait_ns = 2 * 1000 * 1000;
  srand (zi);
  for (i = 0; i < rounds; i++) {
    struct writer ahead;

    start_block_writer (&ahead, wp, 1);
    usleep ((useconds_t) (rand () % 4000));
    memset (buf, block_byte (wp), BLOCK);
    CHECK (zq_pwrite (img, buf, BLOCK, wp, 0) == 0);
    pthread_join (ahead.thread, NULL);
    CHECK (ahead.failures == 0 ||
           (ahead.failures == 1 && ahead.last_errno == EIO));
    if (ahead.failures == 0) {
      CHECK (zone_wp (zi) == wp + 2 * BLOCK);
      check_blocks (wp, 2);
      accepted++;
    }
    else
      CHECK (zone_wp (zi) == wp + BLOCK);
    wp = zone_wp (zi);
  }
  img->zones->ahead_wait_ns = 0;
  printf ("timeout races: %u of %u ahead writes accepted\n", accepted,
          rounds);
  /* Both ends of the race were run: the arrival times spread over twice
   * the wait.
   */
  CHECK (accepted > 0 && accepted < rounds);
}

/* A new zoned image of 4 zones, the first conventional, opened as img. */
static bool
open_new_image (char *path, uint32_t max_open, uint64_t capacity)
{
  struct zq_create_options co = {
    .size = 4 * (uint64_t) ZONE_SIZE, .zoned = true,
    .zone_size = ZONE_SIZE, .conventional_zones = 1,
    .max_open_zones = max_open, .zone_capacity = capacity,
  };
  struct zq_open_options oo = { 0 };
  int fd;

  fd = mkstemp (path);
  CHECK (fd >= 0);
  close (fd);
  co.filename = oo.filename = img_path = path;
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
  char path[] = "/tmp/unit-zone-queue-XXXXXX";
  char limited_path[] = "/tmp/unit-zone-queue-XXXXXX";
  char short_path[] = "/tmp/unit-zone-queue-XXXXXX";

  alarm (120);                  /* a zone that hangs fails the test */
  if (open_new_image (path, 0, 0)) {
    test_interleaved_writers (1);
    test_out_of_place (1);
    CHECK (zq_zone_reset (img, 1) == 0);
    CHECK (zone_wp (1) == ZONE_SIZE);
    test_interleaved_writers (1);

    test_pipelined (2);
    test_failure_dooms_later_writes (2);
    test_pipelined (2);
    test_reset_waits (2);
    test_pipelined_finish (3);
    CHECK (zq_close (img) == 0);
  }
  unlink (path);

  if (open_new_image (limited_path, 1, 0)) {
    test_open_limit ();
    CHECK (zq_close (img) == 0);
  }
  unlink (limited_path);

  if (open_new_image (short_path, 0, ZONE_SIZE / 2)) {
    test_queued_accepted_together (1);
    test_queued_past_capacity (2, ZONE_SIZE / 2);
    test_timeout_races_acceptance (3, 200);
    CHECK (zq_close (img) == 0);
  }
  unlink (short_path);
  UNIT_EXIT ();
}
