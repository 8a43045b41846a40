/* Writes that wait for their turn without a thread, and writes across
 * zone boundaries, through the public API (lib/zqcow2.h):
 *
 * - zq_pwrite_parked parks a write ahead of the pointer and calls its
 *   wake exactly when the write may be retried, in offset order;
 * - the wait of a parked or a waiting write runs from the last progress
 *   in its zone, not from its arrival, and one that expires fails with
 *   EIO, counted by zq_zone_wait_timeouts (the wait is set to 1 s here,
 *   for the timings below);
 * - under zone_boundary_split a write crossing zone boundaries is applied
 *   as its pieces when each is valid in its zone, and refused with
 *   nothing changed when one is not; without it, it is refused.
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
#define BLOCK 4096u

static struct zq_image *img;

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
sleep_until (double t)
{
  double left;

  while ((left = t - now ()) > 0) {
    struct timespec ts = { (time_t) left,
                           (long) ((left - (time_t) left) * 1e9) };
    nanosleep (&ts, NULL);
  }
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

static uint8_t
byte_at (uint64_t offset)
{
  return (uint8_t) (offset / BLOCK * 13 + 5);
}

/* A buffer of count bytes as written at offset (count <= 64 KiB), one
 * per thread.
 */
static const uint8_t *
data_for (uint64_t offset, uint64_t count)
{
  static _Thread_local uint8_t buf[64 * 1024];
  uint64_t i;

  for (i = 0; i < count; i++)
    buf[i] = byte_at (offset + i / BLOCK * BLOCK);
  return buf;
}

static int
write_at (uint64_t offset, uint64_t count)
{
  return zq_pwrite (img, data_for (offset, count), count, offset, 0);
}

/* Whether [offset, offset + count) reads as written by write_at, or (zero)
 * as zeroes.
 */
static bool
reads_as (uint64_t offset, uint64_t count, bool zero)
{
  static uint8_t buf[64 * 1024];
  uint64_t i;

  if (zq_pread (img, buf, count, offset) == -1)
    return false;
  for (i = 0; i < count; i++)
    if (buf[i] != (zero ? 0 : byte_at (offset + i / BLOCK * BLOCK)))
      return false;
  return true;
}

#define reads_back(offset, count) reads_as (offset, count, false)
#define reads_zero(offset, count) reads_as (offset, count, true)

/* A parked write and the calls of its wake. */
struct parked {
  struct zq_park park;          /* first: wake finds its parked */
  uint64_t offset;
  unsigned woken;
};

static void
count_wake (struct zq_park *park)
{
  ((struct parked *) park)->woken++;
}

static int
write_parked (struct parked *p)
{
  return zq_pwrite_parked (img, data_for (p->offset, BLOCK), BLOCK,
                           p->offset, 0, &p->park);
}

/* Blocks 2 and 1 park; the write of block 0 wakes block 1 only, whose
 * retry is accepted and wakes block 2.
 */
static void
test_wake_order (uint32_t zi)
{
  uint64_t base = (uint64_t) zi * ZONE_SIZE;
  struct parked p1 = { .park.wake = count_wake, .offset = base + BLOCK };
  struct parked p2 = { .park.wake = count_wake, .offset = base + 2 * BLOCK };

  CHECK (write_parked (&p2) == ZQ_PARKED);
  CHECK (write_parked (&p1) == ZQ_PARKED);
  CHECK (p1.woken == 0 && p2.woken == 0);
  CHECK (zone_wp (zi) == base);
  CHECK (write_at (base, BLOCK) == 0);
  CHECK (p1.woken == 1 && p2.woken == 0);
  CHECK (write_parked (&p1) == 0);
  CHECK (p2.woken == 1);
  CHECK (write_parked (&p2) == 0);
  CHECK (zone_wp (zi) == base + 3 * BLOCK);
  CHECK (reads_back (base, 3 * BLOCK));
  /* The engine clears its part of a record once a call completes. */
  CHECK (p2.park.since_ns == 0 && !p2.park.expired &&
         p2.park.wake == count_wake);
}

/* Block 2 parks with blocks 0 and 1 missing.  Block 0 comes 0.7 s later:
 * at 1.4 s the parked write is 0.7 s past the last progress and must not
 * expire; 1 s after that progress it does, and its retry fails.
 */
static void
test_expiry_from_progress (uint32_t zi)
{
  uint64_t base = (uint64_t) zi * ZONE_SIZE;
  struct parked p = { .park.wake = count_wake, .offset = base + 2 * BLOCK };
  uint64_t timeouts = zq_zone_wait_timeouts (img);
  double t0 = now (), progress;

  CHECK (write_parked (&p) == ZQ_PARKED);
  sleep_until (t0 + 0.7);
  CHECK (write_at (base, BLOCK) == 0);
  progress = now ();
  sleep_until (t0 + 1.4);
  zq_parked_expire (img);
  if (now () - progress < 0.95)
    CHECK (p.woken == 0);
  else
    fprintf (stderr, "unit-zone-park: the machine is too slow to check "
             "that progress postpones the expiry\n");
  sleep_until (progress + 1.2);
  zq_parked_expire (img);
  CHECK (p.woken == 1 && p.park.expired);
  errno = 0;
  CHECK (write_parked (&p) == -1 && errno == EIO);
  CHECK (zq_zone_wait_timeouts (img) == timeouts + 1);
  CHECK (zone_wp (zi) == base + BLOCK);
  CHECK (reads_zero (base + 2 * BLOCK, BLOCK));
}

struct waiter {
  uint64_t offset;
  int r, err;
};

static void *
write_waiting (void *opaque)
{
  struct waiter *w = opaque;

  w->r = write_at (w->offset, BLOCK);
  w->err = errno;
  return NULL;
}

/* A write waiting in its thread, ahead by two blocks that come 0.7 s
 * apart, succeeds 1.4 s after it arrived.
 */
static void
test_wait_from_progress (uint32_t zi)
{
  uint64_t base = (uint64_t) zi * ZONE_SIZE;
  struct waiter w = { .offset = base + 2 * BLOCK };
  pthread_t thread;
  double t0 = now ();

  CHECK (pthread_create (&thread, NULL, write_waiting, &w) == 0);
  sleep_until (t0 + 0.7);
  CHECK (write_at (base, BLOCK) == 0);
  sleep_until (t0 + 1.4);
  CHECK (write_at (base + BLOCK, BLOCK) == 0);
  pthread_join (thread, NULL);
  CHECK (w.r == 0);
  CHECK (zone_wp (zi) == base + 3 * BLOCK);
  CHECK (reads_back (base, 3 * BLOCK));
}

/* Zones zi and zi + 1 as they are, to check that a refusal changed
 * nothing.
 */
struct two_zones {
  uint64_t wp[2];
  enum zq_zone_cond cond[2];
};

static struct two_zones
two_zones (uint32_t zi)
{
  struct two_zones t;
  int i;

  for (i = 0; i < 2; i++) {
    t.wp[i] = zone_wp (zi + i);
    t.cond[i] = zone_cond (zi + i);
  }
  return t;
}

static bool
unchanged (uint32_t zi, struct two_zones before)
{
  struct two_zones after = two_zones (zi);

  return memcmp (&before, &after, sizeof before) == 0;
}

/* Zone zi is written from its pointer up to 8 KiB before its end. */
static void
fill_but_8k (uint32_t zi)
{
  uint64_t base = (uint64_t) zi * ZONE_SIZE, offset;

  for (offset = zone_wp (zi); offset < base + ZONE_SIZE - 2 * BLOCK;
       offset += 16 * BLOCK) {
    uint64_t n = base + ZONE_SIZE - 2 * BLOCK - offset;
    CHECK (write_at (offset, n < 16 * BLOCK ? n : 16 * BLOCK) == 0);
  }
  CHECK (zone_wp (zi) == base + ZONE_SIZE - 2 * BLOCK);
}

/* Under zone_boundary_split, on zones 1 (filled but 8 KiB) and 2 (empty)
 * and more.  Returns with zone 1 full and zone 2 written 8 KiB.
 */
static void
test_split (void)
{
  uint64_t z1 = ZONE_SIZE, z2 = 2 * (uint64_t) ZONE_SIZE;
  uint64_t z3 = 3 * (uint64_t) ZONE_SIZE;
  struct parked p = { .park.wake = count_wake };
  struct two_zones before;

  fill_but_8k (1);
  before = two_zones (1);

  /* The first piece behind its zone's pointer. */
  errno = 0;
  CHECK (write_at (z2 - 3 * BLOCK, 4 * BLOCK) == -1 && errno == EIO);
  CHECK (unchanged (1, before));
  /* The first piece ahead of its pointer: it parks. */
  p.offset = z2 - BLOCK;
  CHECK (zq_pwrite_parked (img, data_for (p.offset, 4 * BLOCK), 4 * BLOCK,
                           p.offset, 0, &p.park) == ZQ_PARKED);

  /* Valid pieces: the pointer write wakes the parked straddling write,
   * which then lands in both zones.
   */
  CHECK (write_at (z2 - 2 * BLOCK, BLOCK) == 0);
  CHECK (p.woken == 1);
  CHECK (zq_pwrite_parked (img, data_for (p.offset, 4 * BLOCK), 4 * BLOCK,
                           p.offset, 0, &p.park) == 0);
  CHECK (zone_cond (1) == ZQ_ZONE_COND_FULL);
  CHECK (zone_wp (1) == z2);
  CHECK (zone_wp (2) == z2 + 3 * BLOCK);
  CHECK (reads_back (z2 - 2 * BLOCK, 5 * BLOCK));

  /* The next piece not at its zone's pointer: zone 3 already written. */
  fill_but_8k (2);
  CHECK (write_at (z3, BLOCK) == 0);
  before = two_zones (2);
  errno = 0;
  CHECK (write_at (z3 - 2 * BLOCK, 4 * BLOCK) == -1 && errno == EIO);
  CHECK (unchanged (2, before));
  CHECK (reads_zero (z3 - 2 * BLOCK, 2 * BLOCK));

  /* Write zeroes across three zones: zone 2's rest, zone 3 whole (once
   * reset), 4 KiB of zone 4.
   */
  CHECK (zq_trim (img, ZONE_SIZE, z3, 0) == 0);
  CHECK (zq_zero (img, ZONE_SIZE + 3 * BLOCK, z3 - 2 * BLOCK, 0) == 0);
  CHECK (zone_cond (2) == ZQ_ZONE_COND_FULL);
  CHECK (zone_cond (3) == ZQ_ZONE_COND_FULL);
  CHECK (zone_wp (4) == z3 + ZONE_SIZE + BLOCK);
  CHECK (reads_zero (z3 - 2 * BLOCK, 3 * BLOCK));
}

/* A new zoned image of 6 zones of 1 MiB, the first conventional. */
static struct zq_image *
open_new_image (char *path, uint64_t capacity, bool split)
{
  struct zq_create_options co = {
    .size = 6 * (uint64_t) ZONE_SIZE, .zoned = true,
    .zone_size = ZONE_SIZE, .zone_capacity = capacity,
    .conventional_zones = 1,
  };
  struct zq_open_options oo = { .zone_boundary_split = split };
  int fd;

  fd = mkstemp (path);
  CHECK (fd >= 0);
  close (fd);
  co.filename = oo.filename = path;
  CHECK (zq_create (&co) == 0);
  return zq_open (&oo);
}

int
main (void)
{
  char path[] = "/tmp/unit-zone-park-XXXXXX";
  char split_path[] = "/tmp/unit-zone-park-XXXXXX";
  char capacity_path[] = "/tmp/unit-zone-park-XXXXXX";
  struct two_zones before;

  img = open_new_image (path, 0, false);
  CHECK (img != NULL);
  if (img != NULL) {
    img->zones->ahead_wait_ns = 1000000000;
    test_wake_order (1);
    test_expiry_from_progress (2);
    test_wait_from_progress (3);
    /* Without the option, crossing a boundary is refused. */
    fill_but_8k (4);
    before = two_zones (4);
    errno = 0;
    CHECK (write_at (5 * (uint64_t) ZONE_SIZE - 2 * BLOCK, 4 * BLOCK) == -1 &&
           errno == EIO);
    CHECK (unchanged (4, before));
    CHECK (zq_close (img) == 0);
  }
  unlink (path);

  img = open_new_image (split_path, 0, true);
  CHECK (img != NULL);
  if (img != NULL) {
    test_split ();
    CHECK (zq_close (img) == 0);
  }
  unlink (split_path);

  /* A capacity below the zone size: no write can cross into the next
   * zone, as the first piece would go past its zone's capacity.
   */
  img = open_new_image (capacity_path, ZONE_SIZE - 4 * BLOCK, true);
  CHECK (img != NULL);
  if (img != NULL) {
    before = two_zones (1);
    errno = 0;
    CHECK (zq_zero (img, 2 * ZONE_SIZE, ZONE_SIZE, 0) == -1 &&
           errno == EIO);
    CHECK (unchanged (1, before));
    CHECK (zq_close (img) == 0);
  }
  unlink (capacity_path);
  UNIT_EXIT ();
}
