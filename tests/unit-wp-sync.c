/* Write-pointer writes against the syncs around them, through the public
 * API (lib/zqcow2.h), with one fdatasync of the image held at a time by
 * powercut.c's gate:
 *
 *   - a zone reset that runs while a flush is syncing, after the flush
 *     has taken the zone's old pointer, leaves the new pointer on disk,
 *     not the old one: otherwise the pointer claims data whose clusters
 *     the reset has released, and an image copied (as a kill -9 leaves
 *     it) during the next flush reads zeroes below its pointer;
 *   - reads that need meta_lock (an L2 lookup) complete while the sync
 *     that makes a reset's pointer, or a flush's pointers, durable is in
 *     progress.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "powercut.h"
#include "qcow2-format.h"
#include "unit.h"

#define ZONE_SIZE (4u * 1024 * 1024)
#define BLOCK 4096u
#define DATA (64u * 1024)       /* one cluster written into a zone */
/* Ample for a request that needs no sync to complete, and for a held
 * sync to be reached, even on a loaded machine; the waits end as soon as
 * that happens, so only a failure waits this long.
 */
#define WAIT_SECONDS 10
/* How long a reset is given to run while a flush's sync is held: it
 * completes at once without the fix, and waits for the flush with it.
 */
#define RESET_GRACE_SECONDS 1

static struct zq_image *img;
static const char *img_path;

/* A request run on a thread of its own, so that the test can see
 * whether it completes while a sync is held.
 */
struct job {
  pthread_t thread;
  int (*fn) (struct job *);
  uint64_t offset, count;
  int r, err;
  bool done;
  pthread_mutex_t lock;
  pthread_cond_t changed;
};

static void *
run_job (void *opaque)
{
  struct job *j = opaque;
  int r = j->fn (j);

  pthread_mutex_lock (&j->lock);
  j->r = r;
  j->err = errno;
  j->done = true;
  pthread_cond_broadcast (&j->changed);
  pthread_mutex_unlock (&j->lock);
  return NULL;
}

static void
start_job (struct job *j, int (*fn) (struct job *), uint64_t offset,
           uint64_t count)
{
  *j = (struct job) { .fn = fn, .offset = offset, .count = count };
  pthread_mutex_init (&j->lock, NULL);
  pthread_cond_init (&j->changed, NULL);
  CHECK (pthread_create (&j->thread, NULL, run_job, j) == 0);
}

/* Whether the job completes within `seconds`. */
static bool
job_done_within (struct job *j, unsigned seconds)
{
  struct timespec deadline;
  bool done;

  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += seconds;
  pthread_mutex_lock (&j->lock);
  while (!j->done &&
         pthread_cond_timedwait (&j->changed, &j->lock, &deadline) == 0)
    ;
  done = j->done;
  pthread_mutex_unlock (&j->lock);
  return done;
}

/* Waits for the job; returns what its request returned. */
static int
join_job (struct job *j)
{
  pthread_join (j->thread, NULL);
  pthread_mutex_destroy (&j->lock);
  pthread_cond_destroy (&j->changed);
  return j->r;
}

static int
flush_job (struct job *j)
{
  (void) j;
  return zq_flush (img);
}

/* A trim of a whole sequential zone: a reset, without the flush that
 * zq_zone_reset adds.
 */
static int
reset_job (struct job *j)
{
  return zq_trim (img, j->count, j->offset, 0);
}

static int
read_job (struct job *j)
{
  uint8_t buf[BLOCK];

  return zq_pread (img, buf, BLOCK, j->offset);
}

static uint8_t
pattern_byte (uint64_t offset)
{
  return (uint8_t) (offset / BLOCK * 13 + 5);
}

static void
write_pattern (uint64_t offset, uint64_t count)
{
  uint8_t buf[BLOCK];
  uint64_t done;

  for (done = 0; done < count; done += BLOCK) {
    memset (buf, pattern_byte (offset + done), BLOCK);
    CHECK (zq_pwrite (img, buf, BLOCK, offset + done, 0) == 0);
  }
}

static uint64_t
wp_entry_offset (uint32_t zi)
{
  return img->zones->geometry.zonedmeta_offset + (uint64_t) zi * 8;
}

/* The image file as it is now (as kill -9 would leave it), copied and
 * opened read-only; the copy goes once it is closed.
 */
static struct zq_image *
open_copy (void)
{
  char copy[4200], cmd[8500];
  struct zq_open_options oo = { .readonly = true };
  struct zq_image *c;

  snprintf (copy, sizeof copy, "%s.copy", img_path);
  snprintf (cmd, sizeof cmd, "cp '%s' '%s'", img_path, copy);
  CHECK (system (cmd) == 0);
  oo.filename = copy;
  c = zq_open (&oo);
  CHECK (c != NULL);
  unlink (copy);
  return c;
}

/* The write pointer of zone zi in the image file's table. */
static uint64_t
wp_on_disk (uint32_t zi)
{
  struct zq_image *c = open_copy ();
  struct zq_zone z = { .write_pointer = UINT64_MAX };

  if (c != NULL) {
    CHECK (zq_zone_report (c, zi, 1, &z) == 1);
    zq_close (c);
  }
  return z.write_pointer;
}

/* How many bytes below zone zi's write pointer in the image file do not
 * read as what was written there.
 */
static uint64_t
copy_bytes_lost (uint32_t zi)
{
  struct zq_image *c = open_copy ();
  struct zq_zone z;
  uint8_t buf[BLOCK];
  uint64_t offset, lost = 0, j;

  if (c == NULL)
    return UINT64_MAX;
  CHECK (zq_zone_report (c, zi, 1, &z) == 1);
  for (offset = z.start; offset < z.write_pointer; offset += BLOCK) {
    CHECK (zq_pread (c, buf, BLOCK, offset) == 0);
    for (j = 0; j < BLOCK; j++)
      lost += buf[j] != pattern_byte (offset);
  }
  zq_close (c);
  return lost;
}

/* A flush takes zone 1's pointer (one cluster written) and is held in
 * its first sync; meanwhile zone 1 is reset.  Once both have returned,
 * the reset's pointer must be the one on disk: its clusters are gone.
 * And the next flush, which writes the reset zone's L2 table, must not
 * leave an image whose pointer claims data that reads as zeroes.
 */
static void
test_reset_during_flush (void)
{
  uint64_t z1 = ZONE_SIZE, l2_offset;
  struct job flush, reset;

  write_pattern (z1, DATA);
  powercut_hold_sync (0, UINT64_MAX);
  start_job (&flush, flush_job, 0, 0);
  CHECK (powercut_sync_held (WAIT_SECONDS));
  start_job (&reset, reset_job, z1, ZONE_SIZE);
  /* The reset either completes meanwhile or waits for the flush's
   * write-pointer write; give it the time to do either.
   */
  job_done_within (&reset, RESET_GRACE_SECONDS);
  powercut_release_sync ();
  CHECK (join_job (&flush) == 0);
  CHECK (join_job (&reset) == 0);
  CHECK (wp_on_disk (1) == z1);

  /* The next flush writes the L2 table that the reset changed; the
   * image copied while its sync is held must read as a zone holds.
   */
  l2_offset = img->l1_table[z1 >> (img->l2_bits + img->cluster_bits)] &
              QCOW2_L1E_OFFSET_MASK;
  CHECK (l2_offset != 0);
  powercut_hold_sync (l2_offset, img->cluster_size);
  start_job (&flush, flush_job, 0, 0);
  CHECK (powercut_sync_held (WAIT_SECONDS));
  CHECK (copy_bytes_lost (1) == 0);
  powercut_release_sync ();
  CHECK (join_job (&flush) == 0);
}

/* While the sync that makes a write pointer durable is held, a read of
 * the conventional zone (an L2 lookup under meta_lock) completes:
 * `persist` is a reset of zone zi, or a flush of its written pointer.
 */
static void
test_read_during_wp_sync (uint32_t zi, bool reset)
{
  uint64_t base = (uint64_t) zi * ZONE_SIZE;
  struct job persist, reader;

  write_pattern (base, BLOCK);
  if (reset)
    CHECK (zq_flush (img) == 0);
  powercut_hold_sync (wp_entry_offset (zi), 8);
  if (reset)
    start_job (&persist, reset_job, base, ZONE_SIZE);
  else
    start_job (&persist, flush_job, 0, 0);
  CHECK (powercut_sync_held (WAIT_SECONDS));
  start_job (&reader, read_job, 0, BLOCK);
  CHECK (job_done_within (&reader, WAIT_SECONDS));
  powercut_release_sync ();
  CHECK (join_job (&reader) == 0);
  CHECK (join_job (&persist) == 0);
  CHECK (wp_on_disk (zi) == (reset ? base : base + BLOCK));
}

int
main (void)
{
  char path[] = "/tmp/unit-wp-sync-XXXXXX";
  char shadow[sizeof path + 8];
  struct zq_create_options co = {
    .size = 4 * (uint64_t) ZONE_SIZE, .zoned = true,
    .zone_size = ZONE_SIZE, .conventional_zones = 1,
  };
  struct zq_open_options oo = { 0 };
  int fd;

  fd = mkstemp (path);
  CHECK (fd >= 0);
  close (fd);
  snprintf (shadow, sizeof shadow, "%s.shadow", path);
  co.filename = oo.filename = img_path = path;
  CHECK (zq_create (&co) == 0);
  img = zq_open (&oo);
  CHECK (img != NULL);
  if (img != NULL) {
    CHECK (powercut_start (path, shadow) == 0);
    write_pattern (0, BLOCK);           /* for the reads */
    CHECK (zq_flush (img) == 0);

    test_reset_during_flush ();
    test_read_during_wp_sync (2, true);
    test_read_during_wp_sync (3, false);

    CHECK (zq_close (img) == 0);
    powercut_stop ();
  }
  unlink (path);
  unlink (shadow);
  UNIT_EXIT ();
}
