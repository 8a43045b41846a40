/* Concurrent writes to one sequential zone through the public API
 * (lib/zqcow2.h): requests that arrive out of order are queued and run in
 * write-pointer order, requests behind the pointer fail at once, and a
 * reset waits for the writes in progress.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zqcow2.h"
#include "unit.h"

#define ZONE_SIZE (4u * 1024 * 1024)
#define BLOCK 4096u
#define THREADS 8
#define BLOCKS 512u             /* 2 MiB of zone 1 */

static struct zq_image *img;

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
};

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
    if (zq_pwrite (img, buf, BLOCK, offset, 0) == -1)
      wr->failures++;
  }
  return NULL;
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
 * the gap: EIO after the 1 second wait, and the pointer does not move.
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

int
main (void)
{
  char path[] = "/tmp/unit-zone-queue-XXXXXX";
  struct zq_create_options co = {
    .size = 4 * (uint64_t) ZONE_SIZE, .zoned = true,
    .zone_size = ZONE_SIZE, .conventional_zones = 1,
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
  if (img == NULL) {
    unlink (path);
    UNIT_EXIT ();
  }

  test_interleaved_writers (1);
  test_out_of_place (1);
  CHECK (zq_zone_reset (img, 1) == 0);
  CHECK (zone_wp (1) == ZONE_SIZE);
  test_interleaved_writers (1);

  CHECK (zq_close (img) == 0);
  unlink (path);
  UNIT_EXIT ();
}
