/* Requests on a zoned image: the write-pointer rules of
 * zoned-qcow2-format.md and the NBD mapping of nbd-zones.md.  Every
 * refused request changes nothing and is logged once, naming the zone,
 * its condition and write pointer, and the request.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "zones-internal.h"

/* How long a write that arrives ahead of the write pointer waits for the
 * writes before it (the NBD side of Linux's zone write plugging).
 */
#define AHEAD_WAIT_SECONDS 1

static int refuse (struct zq_image *img, const struct zone *z, uint32_t zi,
                   const char *op, uint64_t offset, uint64_t count, int err,
                   const char *reason)
{
  zq_error ("%s: zone %" PRIu32 " (%s, write pointer 0x%" PRIx64 "): %s at "
            "0x%" PRIx64 " length %" PRIu64 " refused: %s", img->filename,
            zi, zq_zone_cond_name (zone_reported_cond (z)), z->wp, op, offset,
            count, reason);
  errno = err;
  return -1;
}

static uint32_t
zone_index (const struct zq_image *img, uint64_t offset)
{
  return (uint32_t) (offset / img->zones->geometry.zone_size);
}

/* Conventional zones take any write, even one spanning several of them. */
static bool
all_conventional (const struct zq_image *img, uint64_t offset, uint64_t end)
{
  const struct zone_set *zs = img->zones;
  uint32_t i;

  for (i = zone_index (img, offset); i <= zone_index (img, end - 1); i++)
    if (!zs->zones[i].conventional || zs->zones[i].offline ||
        zs->zones[i].readonly)
      return false;
  return true;
}

/* How many of the seg bytes from offset lie below the zone's write
 * pointer, so read back what was written: all of them in a conventional
 * zone (and in an offline one, which has no pointer to go by).
 */
static uint64_t
bytes_written (struct zone_set *zs, const struct zone *z, uint64_t offset,
               uint64_t seg)
{
  uint64_t valid;

  if (z->conventional || z->offline)
    return seg;
  pthread_mutex_lock (&zs->lock);
  valid = z->wp > offset ? z->wp - offset : 0;
  pthread_mutex_unlock (&zs->lock);
  return valid < seg ? valid : seg;
}

/* Queues the request w on zone z and sleeps until a completion or a
 * transition wakes it, or until the deadline (none: NULL).  Returns what
 * the wait returned (ETIMEDOUT, or 0).  zs->lock held.
 */
static int
wait_on_zone (struct zone_set *zs, struct zone *z, struct zone_waiter *w,
              const struct timespec *deadline)
{
  struct zone_waiter **p;
  int r;

  w->next = z->waiters;
  z->waiters = w;
  r = deadline ? pthread_cond_timedwait (&w->wake, &zs->lock, deadline)
               : pthread_cond_wait (&w->wake, &zs->lock);
  for (p = &z->waiters; *p != w; p = &(*p)->next)
    ;
  *p = w->next;
  return r;
}

/* After a completion: wakes the requests whose turn it may be, those at
 * the new write pointer and those it has passed (they fail at once), not
 * the ones further ahead, which could only go back to sleep.
 */
static void
wake_ready (struct zone *z)
{
  struct zone_waiter *w;

  for (w = z->waiters; w != NULL; w = w->next)
    if (w->offset <= z->wp)
      pthread_cond_signal (&w->wake);
}

/* After a reset or when the zone becomes full: every queued request has
 * something new to find out, if only that it must fail now.
 */
static void
wake_all (struct zone *z)
{
  struct zone_waiter *w;

  for (w = z->waiters; w != NULL; w = w->next)
    pthread_cond_signal (&w->wake);
}

static int
qcow2_write_or_zero (struct zq_image *img, const void *buf, uint64_t count,
                     uint64_t offset, bool zeroes, unsigned zero_flags)
{
  return zeroes ? qcow2_zero (img, count, offset, zero_flags)
                : qcow2_write (img, buf, count, offset);
}

int
zone_write (struct zq_image *img, const void *buf, uint64_t count,
            uint64_t offset, bool zeroes, unsigned zero_flags)
{
  struct zone_set *zs = img->zones;
  uint32_t zi = zone_index (img, offset);
  struct zone *z = &zs->zones[zi];
  const char *op = zeroes ? "write zeroes" : "write";
  uint64_t end = offset + count;
  struct timespec deadline;
  struct zone_waiter waiter = { .offset = offset };
  bool finish;
  char why[256];
  int r;

  if (count == 0)
    return 0;
  if (end > z->start + z->length) {
    if (all_conventional (img, offset, end))
      return qcow2_write_or_zero (img, buf, count, offset, zeroes,
                                  zero_flags);
    return refuse (img, z, zi, op, offset, count, EIO,
                   "it crosses the zone boundary");
  }
  if (z->offline)
    return refuse (img, z, zi, op, offset, count, EIO, "the zone is offline");
  if (z->readonly)
    return refuse (img, z, zi, op, offset, count, EPERM,
                   "the zone is read-only");
  if (z->conventional)
    return qcow2_write_or_zero (img, buf, count, offset, zeroes, zero_flags);
  if (offset % 512 != 0 || count % 512 != 0)
    return refuse (img, z, zi, op, offset, count, EINVAL,
                   "offset and length must be multiples of the 512-byte "
                   "logical block size");

  clock_gettime (CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += AHEAD_WAIT_SECONDS;
  pthread_cond_init (&waiter.wake, &zs->waiter_attr);

  pthread_mutex_lock (&zs->lock);
  for (;;) {
    if (z->cond == ZQ_ZONE_COND_FULL) {
      refuse (img, z, zi, op, offset, count, EIO, "the zone is full");
      goto unlock_fail;
    }
    if (offset < z->wp) {
      refuse (img, z, zi, op, offset, count, EIO,
              "it is not at the write pointer");
      goto unlock_fail;
    }
    if (offset == z->wp && !z->busy)
      break;
    /* Ahead of the pointer, or an earlier write is still in flight. */
    if (wait_on_zone (zs, z, &waiter, &deadline) == ETIMEDOUT) {
      refuse (img, z, zi, op, offset, count, EIO,
              "it is ahead of the write pointer, and the writes before it "
              "did not arrive within 1 second");
      goto unlock_fail;
    }
  }

  /* Write zeroes up to the end of the capacity or of the zone: finish. */
  finish = zeroes && (end == z->start + z->capacity ||
                      end == z->start + z->length);
  if (end > z->start + z->capacity && !finish) {
    refuse (img, z, zi, op, offset, count, EIO,
            "it goes past the zone capacity");
    goto unlock_fail;
  }
  if (!finish &&
      (r = zone_open_locked (zs, z, ZQ_ZONE_COND_IMP_OPEN, why,
                             sizeof why)) != 0) {
    refuse (img, z, zi, op, offset, count, r, why);
    goto unlock_fail;
  }
  /* Finishing an empty zone makes it active for a moment, as on a ZBC
   * device: it needs a free active zone.
   */
  if (finish && z->cond == ZQ_ZONE_COND_EMPTY &&
      zs->geometry.max_active_zones &&
      zs->nr_active >= zs->geometry.max_active_zones) {
    snprintf (why, sizeof why, "the active zone limit (max_active_zones %"
              PRIu32 ") is reached", zs->geometry.max_active_zones);
    refuse (img, z, zi, op, offset, count, ENOSPC, why);
    goto unlock_fail;
  }
  z->busy = true;
  z->last_used = ++zs->clock;
  pthread_mutex_unlock (&zs->lock);
  pthread_cond_destroy (&waiter.wake);

  r = qcow2_write_or_zero (img, buf, count, offset, zeroes, zero_flags);

  pthread_mutex_lock (&zs->lock);
  z->busy = false;
  if (r == 0) {
    z->wp = finish ? z->start + z->length : end;
    if (z->wp >= z->start + z->capacity)
      zone_set_cond (zs, z, ZQ_ZONE_COND_FULL);
  }
  if (z->cond == ZQ_ZONE_COND_FULL)
    wake_all (z);
  else
    wake_ready (z);
  pthread_mutex_unlock (&zs->lock);
  return r;

 unlock_fail:
  pthread_mutex_unlock (&zs->lock);
  pthread_cond_destroy (&waiter.wake);
  return -1;
}

int
zone_read (struct zq_image *img, void *buf, uint64_t count, uint64_t offset)
{
  struct zone_set *zs = img->zones;
  uint8_t *p = buf;

  while (count > 0) {
    uint32_t zi = zone_index (img, offset);
    struct zone *z = &zs->zones[zi];
    uint64_t seg = z->start + z->length - offset, valid;

    if (seg > count)
      seg = count;
    if (z->offline)
      return refuse (img, z, zi, "read", offset, seg, EIO,
                     "the zone is offline");
    /* Bytes at or beyond the write pointer read as zeroes, whatever
     * clusters may still hold.
     */
    valid = bytes_written (zs, z, offset, seg);
    if (valid > 0 && qcow2_read (img, p, valid, offset) == -1)
      return -1;
    memset (p + valid, 0, seg - valid);
    p += seg;
    offset += seg;
    count -= seg;
  }
  return 0;
}

/* Reset: the new write pointer is durable before the clusters go. */
static int
zone_reset (struct zq_image *img, uint32_t zi)
{
  struct zone_set *zs = img->zones;
  struct zone *z = &zs->zones[zi];
  struct zone_waiter waiter = { .offset = z->start };
  bool persist;
  int r = 0;

  if (z->offline)
    return refuse (img, z, zi, "reset", z->start, z->length, EIO,
                   "the zone is offline");
  if (z->readonly)
    return refuse (img, z, zi, "reset", z->start, z->length, EPERM,
                   "the zone is read-only");

  pthread_cond_init (&waiter.wake, &zs->waiter_attr);
  pthread_mutex_lock (&zs->lock);
  while (z->busy)
    wait_on_zone (zs, z, &waiter, NULL);
  z->busy = true;
  z->wp = z->start;
  zone_set_cond (zs, z, ZQ_ZONE_COND_EMPTY);
  persist = z->wp_on_disk != z->start;
  pthread_mutex_unlock (&zs->lock);

  if (persist)
    r = zone_persist_wp (img, zi, z->start);
  if (r == 0)
    r = qcow2_trim (img, z->length, z->start);

  pthread_mutex_lock (&zs->lock);
  z->busy = false;
  wake_all (z);
  pthread_mutex_unlock (&zs->lock);
  pthread_cond_destroy (&waiter.wake);
  return r;
}

int
zone_trim (struct zq_image *img, uint64_t count, uint64_t offset)
{
  struct zone_set *zs = img->zones;
  bool everything = offset == 0 && count == img->virtual_size;

  while (count > 0) {
    uint32_t zi = zone_index (img, offset);
    struct zone *z = &zs->zones[zi];
    uint64_t seg = z->start + z->length - offset;

    if (seg > count)
      seg = count;
    if (z->conventional) {
      if (qcow2_trim (img, seg, offset) == -1)
        return -1;
    }
    else if (everything && (z->offline || z->readonly))
      ;                         /* reset all passes over such zones */
    else if (offset == z->start && seg >= z->capacity) {
      if (zone_reset (img, zi) == -1)
        return -1;
    }
    /* A trim of part of a sequential zone is advisory: nothing to do. */
    offset += seg;
    count -= seg;
  }
  return 0;
}

struct stop_watch {
  zq_extent_fn fn;
  void *opaque;
  bool stopped;
};

static int
watch_extent (void *opaque, uint64_t offset, uint64_t length, uint32_t flags)
{
  struct stop_watch *w = opaque;

  if (w->fn (w->opaque, offset, length, flags) == -1) {
    w->stopped = true;
    return -1;
  }
  return 0;
}

int
zone_block_status (struct zq_image *img, uint64_t count, uint64_t offset,
                   zq_extent_fn fn, void *opaque)
{
  struct zone_set *zs = img->zones;
  struct stop_watch watch = { .fn = fn, .opaque = opaque };
  unsigned zones_seen;

  /* A bounded number of zones per call: the client asks for the rest. */
  for (zones_seen = 0; count > 0 && zones_seen < 64; zones_seen++) {
    uint32_t zi = zone_index (img, offset);
    struct zone *z = &zs->zones[zi];
    uint64_t seg = z->start + z->length - offset, valid;
    int r;

    if (seg > count)
      seg = count;
    valid = bytes_written (zs, z, offset, seg);
    if (valid > 0) {
      r = qcow2_block_status (img, valid, offset, watch_extent, &watch);
      if (r != 0)
        return r == -1 ? -1 : 0;   /* stopped, or covered less */
    }
    if (seg > valid &&
        watch_extent (&watch, offset + valid, seg - valid,
                      ZQ_EXTENT_HOLE | ZQ_EXTENT_ZERO) == -1)
      return 0;
    offset += seg;
    count -= seg;
  }
  return 0;
}

/* Management operations (zqcow2-img zone ...). */

static struct zone *
managed_zone (struct zq_image *img, uint32_t zi, const char *op)
{
  struct zone_set *zs = img->zones;
  struct zone *z;

  if (zs == NULL || zi >= zs->nr_zones) {
    zq_error ("%s: zone %s: zone %" PRIu32 " does not exist", img->filename,
              op, zi);
    errno = EINVAL;
    return NULL;
  }
  if (img->readonly) {
    zq_error ("%s: zone %s refused: the image is open read-only",
              img->filename, op);
    errno = EPERM;
    return NULL;
  }
  z = &zs->zones[zi];
  if (z->conventional) {
    refuse (img, z, zi, op, z->start, z->length, EINVAL,
            "the zone is conventional");
    return NULL;
  }
  if (z->offline) {
    refuse (img, z, zi, op, z->start, z->length, EIO, "the zone is offline");
    return NULL;
  }
  if (z->readonly) {
    refuse (img, z, zi, op, z->start, z->length, EPERM,
            "the zone is read-only");
    return NULL;
  }
  return z;
}

int
zq_zone_open (struct zq_image *img, uint32_t zi)
{
  struct zone *z = managed_zone (img, zi, "open");
  struct zone_set *zs = img->zones;
  char why[256];
  int r = 0;

  if (z == NULL)
    return -1;
  pthread_mutex_lock (&zs->lock);
  if (z->cond != ZQ_ZONE_COND_FULL &&
      (r = zone_open_locked (zs, z, ZQ_ZONE_COND_EXP_OPEN, why,
                             sizeof why)) != 0)
    refuse (img, z, zi, "open", z->start, z->length, r, why);
  pthread_mutex_unlock (&zs->lock);
  return r ? -1 : 0;
}

int
zq_zone_close (struct zq_image *img, uint32_t zi)
{
  struct zone *z = managed_zone (img, zi, "close");
  struct zone_set *zs = img->zones;

  if (z == NULL)
    return -1;
  pthread_mutex_lock (&zs->lock);
  if (z->cond == ZQ_ZONE_COND_IMP_OPEN || z->cond == ZQ_ZONE_COND_EXP_OPEN)
    zone_set_cond (zs, z, z->wp == z->start ? ZQ_ZONE_COND_EMPTY
                                            : ZQ_ZONE_COND_CLOSED);
  pthread_mutex_unlock (&zs->lock);
  return 0;
}

int
zq_zone_finish (struct zq_image *img, uint32_t zi)
{
  struct zone *z = managed_zone (img, zi, "finish");
  uint64_t wp;

  if (z == NULL)
    return -1;
  pthread_mutex_lock (&img->zones->lock);
  wp = z->wp;
  pthread_mutex_unlock (&img->zones->lock);
  if (z->cond != ZQ_ZONE_COND_FULL &&
      zone_write (img, NULL, z->start + z->length - wp, wp, true,
                  ZQ_MAY_TRIM) == -1)
    return -1;
  return zones_flush (img);
}

int
zq_zone_reset (struct zq_image *img, uint32_t zi)
{
  if (managed_zone (img, zi, "reset") == NULL || zone_reset (img, zi) == -1)
    return -1;
  return zones_flush (img);
}
