/* Requests on a zoned image: the write-pointer rules of
 * zoned-qcow2-format.md and the NBD mapping of nbd-zones.md.  Every
 * refused request changes nothing and is logged once, naming the zone,
 * its condition and write pointer, and the request (at a bounded rate:
 * refusal-log.c).
 *
 * Writes into one sequential zone are pipelined.  A write is accepted
 * once it starts where the writes accepted before it end (wp_admitted),
 * without waiting for them to complete, so a zone sees the client's queue
 * depth.  The write pointer (wp: reads, reports and the table on disk go
 * by it) moves over the writes in offset order as they complete, and a
 * write returns only once the pointer has passed it.
 *
 * When a write fails, the pointer stays at its start, and the writes
 * accepted after it fail with EIO, whether or not their own data was
 * written: that data lies beyond the pointer, so it reads as zeroes and
 * the next writes there replace it.  No write is accepted until those in
 * flight have all finished; then writing resumes at the pointer.
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
 * writes before it (the NBD side of Linux's zone write plugging).  The
 * fuzz build (tests/fuzz/fuzz.mk) makes it 0, so that a fuzzed write ahead
 * of the pointer does not stall its input for a second.
 */
#ifndef AHEAD_WAIT_SECONDS
#define AHEAD_WAIT_SECONDS 1
#endif

static int refuse (struct zq_image *img, const struct zone *z, uint32_t zi,
                   const char *op, uint64_t offset, uint64_t count, int err,
                   const char *reason)
{
  zq_log_refusal (img, "%s: zone %" PRIu32 " (%s, write pointer 0x%" PRIx64
                  "): %s at 0x%" PRIx64 " length %" PRIu64 " refused: %s",
                  img->filename, zi,
                  zq_zone_cond_name (zone_reported_cond (z)), z->wp, op,
                  offset, count, reason);
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

/* Whether a state change concerns the queued request w: a write's turn
 * comes when the next write must start at its offset, or has passed it,
 * or the zone is full (then it fails), unless a reset or the draining
 * of a failed write holds writes back; a reset's comes when no write is
 * in flight.
 */
static bool
may_proceed (const struct zone *z, const struct zone_waiter *w)
{
  if (w->reset)
    return z->in_flight == NULL && !z->resetting;
  if (z->cond == ZQ_ZONE_COND_FULL)
    return true;
  if (z->resetting || z->resets_waiting > 0 || z->failing)
    return false;
  /* An append takes whatever offset is next. */
  return w->append || w->offset <= z->wp_admitted;
}

/* After any change of the zone's state: wakes the queued requests it
 * concerns, not the others, which could only go back to sleep.
 * zs->lock held.
 */
static void
wake_ready (struct zone *z)
{
  struct zone_waiter *w;

  for (w = z->waiters; w != NULL; w = w->next)
    if (may_proceed (z, w))
      pthread_cond_signal (&w->wake);
}

/* Queues the request w on zone z and sleeps until a state change
 * concerns it or the deadline (none: NULL) passes.  Returns what the wait
 * returned (ETIMEDOUT, or 0).  zs->lock held.
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

/* Whether a write at offset may be accepted now: 0 if so, EAGAIN if it
 * must wait for its turn, else the errno to refuse it with, the reason
 * in why.  zs->lock held.
 */
static int
check_turn (const struct zone *z, uint64_t offset, char *why, size_t why_len)
{
  if (z->cond == ZQ_ZONE_COND_FULL) {
    snprintf (why, why_len, "the zone is full");
    return EIO;
  }
  if (offset < z->wp) {
    snprintf (why, why_len, "it is not at the write pointer");
    return EIO;
  }
  /* A write held back by a failure may be a retry at the pointer. */
  if (z->resetting || z->resets_waiting > 0 || z->failing)
    return EAGAIN;
  if (offset < z->wp_admitted) {
    snprintf (why, why_len, "it is not at the write pointer: it overlaps "
              "the writes in flight, which end at 0x%" PRIx64,
              z->wp_admitted);
    return EIO;
  }
  if (offset > z->wp_admitted)
    return EAGAIN;
  if (offset >= z->start + z->capacity) {
    snprintf (why, why_len, "the zone is full once the writes in flight "
              "complete");
    return EIO;
  }
  return 0;
}

/* Waits for the turn of the write at req->offset, within the deadline
 * (none: NULL).  An append has no offset of its own: it is placed where
 * the writes accepted before it end, which is always its turn unless a
 * reset or a failed write holds writes back.  Returns 0, or the errno to
 * refuse it with and the reason in why.  zs->lock held.
 */
static int
wait_turn (struct zone_set *zs, struct zone *z, struct zone_waiter *req,
           const struct timespec *deadline, char *why, size_t why_len)
{
  bool timed_out = false;
  int r;

  for (;;) {
    if (req->append)
      req->offset = z->wp_admitted;
    if ((r = check_turn (z, req->offset, why, why_len)) != EAGAIN)
      break;
    if (timed_out) {
      snprintf (why, why_len, "it is ahead of the write pointer, and the "
                "writes before it did not arrive within %d second",
                AHEAD_WAIT_SECONDS);
      return EIO;
    }
    timed_out = wait_on_zone (zs, z, req, deadline) == ETIMEDOUT;
  }
  return r;
}

/* The capacity and the open and active zone limits, for a write whose
 * turn it is; sets req->wp_after.  Returns 0, or the errno to refuse it
 * with and the reason in why.  zs->lock held.
 */
static int
check_room (struct zone_set *zs, struct zone *z, struct zone_waiter *req,
            uint64_t end, bool zeroes, char *why, size_t why_len)
{
  /* Write zeroes up to the end of the capacity or of the zone: finish. */
  bool finish = zeroes && (end == z->start + z->capacity ||
                           end == z->start + z->length);

  if (!finish) {
    if (end > z->start + z->capacity) {
      snprintf (why, why_len, "it goes past the zone capacity");
      return EIO;
    }
    req->wp_after = end;
    return zone_open_locked (zs, z, ZQ_ZONE_COND_IMP_OPEN, why, why_len);
  }
  /* Finishing an empty zone makes it active for a moment, as on a ZBC
   * device: it needs a free active zone.
   */
  if (z->cond == ZQ_ZONE_COND_EMPTY && zs->geometry.max_active_zones &&
      zs->nr_active >= zs->geometry.max_active_zones) {
    snprintf (why, why_len, "the active zone limit (max_active_zones %"
              PRIu32 ") is reached", zs->geometry.max_active_zones);
    return ENOSPC;
  }
  req->wp_after = z->start + z->length;
  return 0;
}

/* Puts an accepted write at the end of the zone's writes in flight, and
 * lets the write that follows it start at once, before it completes.
 * zs->lock held.
 */
static void
accept_write (struct zone_set *zs, struct zone *z, struct zone_waiter *req)
{
  req->state = ZONE_REQ_RUNNING;
  req->next = NULL;
  if (z->in_flight_last != NULL)
    z->in_flight_last->next = req;
  else
    z->in_flight = req;
  z->in_flight_last = req;
  z->wp_admitted = req->wp_after;
  z->last_used = ++zs->clock;
  wake_ready (z);
}

/* Retires the finished writes at the head of the zone's writes in
 * flight, in offset order: the pointer moves over each that succeeded,
 * up to the first that failed; the writes after that one are doomed, as
 * their data lies beyond a pointer that can no longer reach it.  Once no
 * write is in flight, writes are accepted again from the pointer.
 * zs->lock held.
 */
static void
retire_writes (struct zone_set *zs, struct zone *z)
{
  struct zone_waiter *h;

  while ((h = z->in_flight) != NULL && h->state != ZONE_REQ_RUNNING) {
    z->in_flight = h->next;
    if (h->state == ZONE_REQ_FAILED) {
      if (!z->dooming)
        z->failed_at = h->offset;
      z->dooming = true;
    }
    else if (z->dooming)
      h->doomed = true;
    else {
      z->wp = h->wp_after;
      if (z->wp >= z->start + z->capacity)
        zone_set_cond (zs, z, ZQ_ZONE_COND_FULL);
    }
    h->retired = true;
    pthread_cond_signal (&h->wake);
  }
  if (z->in_flight == NULL) {
    z->in_flight_last = NULL;
    if (z->failing) {
      z->failing = z->dooming = false;
      z->wp_admitted = z->wp;
      /* Closed while writes were in flight that then all failed. */
      if (z->cond == ZQ_ZONE_COND_CLOSED && z->wp == z->start)
        zone_set_cond (zs, z, ZQ_ZONE_COND_EMPTY);
    }
  }
  wake_ready (z);
}

static int
qcow2_write_or_zero (struct zq_image *img, const void *buf, uint64_t count,
                     uint64_t offset, bool zeroes, unsigned zero_flags)
{
  return zeroes ? qcow2_zero (img, count, offset, zero_flags)
                : qcow2_write (img, buf, count, offset);
}

/* The data of an accepted write, through the test's fault hook if any. */
static int
write_zone_data (struct zq_image *img, const void *buf, uint64_t count,
                 uint64_t offset, bool zeroes, unsigned zero_flags)
{
  struct zone_set *zs = img->zones;
  int err;

  if (zs->fault_hook != NULL &&
      (err = zs->fault_hook (zs->fault_opaque, offset, count)) != 0) {
    errno = err;
    return -1;
  }
  return qcow2_write_or_zero (img, buf, count, offset, zeroes, zero_flags);
}

/* Records how writing req's data went, retires what can be retired, and
 * waits until req itself is: whether it succeeded depends on the writes
 * before it.  Returns 0, or -1 with errno.
 */
static int
complete_write (struct zq_image *img, uint32_t zi, struct zone_waiter *req,
                int error, const char *op, uint64_t count)
{
  struct zone_set *zs = img->zones;
  struct zone *z = &zs->zones[zi];
  char why[256];
  int r = 0;

  pthread_mutex_lock (&zs->lock);
  req->state = error ? ZONE_REQ_FAILED : ZONE_REQ_WRITTEN;
  req->error = error;
  if (error)
    z->failing = true;
  retire_writes (zs, z);
  while (!req->retired)
    pthread_cond_wait (&req->wake, &zs->lock);
  if (req->state == ZONE_REQ_FAILED) {
    errno = req->error;
    r = -1;
  }
  else if (req->doomed) {
    snprintf (why, sizeof why, "the write at 0x%" PRIx64 " before it "
              "failed, so the write pointer stays there and the writes "
              "accepted after that one fail too", z->failed_at);
    r = refuse (img, z, zi, op, req->offset, count, EIO, why);
  }
  pthread_mutex_unlock (&zs->lock);
  return r;
}

/* A write into a sequential zone.  Writes are accepted in write-pointer
 * order, each as soon as the one before it has been accepted, and run
 * concurrently; the pointer advances over them in order as they
 * complete, and each returns only once it has.  When one fails, the
 * pointer stays at its start, the writes accepted after it fail with
 * EIO, and writing resumes at the pointer once they have all finished.
 * An append (appended_at not NULL) is a write whose offset is chosen
 * when it is accepted, and returned in *appended_at; it never waits for
 * writes ahead of it, so it has no deadline.
 */
static int
sequential_write (struct zq_image *img, uint32_t zi, const void *buf,
                  uint64_t count, uint64_t offset, bool zeroes,
                  unsigned zero_flags, uint64_t *appended_at)
{
  struct zone_set *zs = img->zones;
  struct zone *z = &zs->zones[zi];
  const char *op = appended_at ? "zone append" : zeroes ? "write zeroes"
                                                        : "write";
  struct zone_waiter req = { .offset = offset,
                             .append = appended_at != NULL };
  struct timespec deadline;
  char why[256];
  int r;

  clock_gettime (CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += AHEAD_WAIT_SECONDS;
  pthread_cond_init (&req.wake, &zs->waiter_attr);

  pthread_mutex_lock (&zs->lock);
  r = wait_turn (zs, z, &req, req.append ? NULL : &deadline, why,
                 sizeof why);
  offset = req.offset;
  if (r == 0)
    r = check_room (zs, z, &req, offset + count, zeroes, why, sizeof why);
  if (r != 0) {
    refuse (img, z, zi, op, offset, count, r, why);
    pthread_mutex_unlock (&zs->lock);
    pthread_cond_destroy (&req.wake);
    return -1;
  }
  accept_write (zs, z, &req);
  pthread_mutex_unlock (&zs->lock);
  if (appended_at)
    *appended_at = offset;

  r = write_zone_data (img, buf, count, offset, zeroes, zero_flags);
  r = complete_write (img, zi, &req, r == 0 ? 0 : errno ? errno : EIO, op,
                      count);
  pthread_cond_destroy (&req.wake);
  return r;
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
  if (offset % ZQ_ZONED_BLOCK_SIZE != 0 || count % ZQ_ZONED_BLOCK_SIZE != 0)
    return refuse (img, z, zi, op, offset, count, EINVAL,
                   "offset and length must be multiples of the 512-byte "
                   "logical block size");
  return sequential_write (img, zi, buf, count, offset, zeroes, zero_flags,
                           NULL);
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

/* Reset: the new write pointer is durable before the clusters go.  It
 * waits for the writes in flight to finish, and holds back new ones from
 * then on so that a stream of writes cannot starve it.
 */
static int
zone_reset (struct zq_image *img, uint32_t zi)
{
  struct zone_set *zs = img->zones;
  struct zone *z = &zs->zones[zi];
  struct zone_waiter waiter = { .offset = z->start, .reset = true };
  int r;

  if (z->offline)
    return refuse (img, z, zi, "reset", z->start, z->length, EIO,
                   "the zone is offline");
  if (z->readonly)
    return refuse (img, z, zi, "reset", z->start, z->length, EPERM,
                   "the zone is read-only");

  pthread_cond_init (&waiter.wake, &zs->waiter_attr);
  pthread_mutex_lock (&zs->lock);
  z->resets_waiting++;
  while (z->in_flight != NULL || z->resetting)
    wait_on_zone (zs, z, &waiter, NULL);
  z->resets_waiting--;
  z->resetting = true;
  z->wp = z->wp_admitted = z->start;
  zone_set_cond (zs, z, ZQ_ZONE_COND_EMPTY);
  pthread_mutex_unlock (&zs->lock);

  /* Whether the pointer on disk is already the start is decided there,
   * after any flush that took the old pointer has written it.
   */
  r = zone_persist_wp (img, zi, z->start);
  if (r == 0)
    r = qcow2_trim (img, z->length, z->start);

  pthread_mutex_lock (&zs->lock);
  z->resetting = false;
  wake_ready (z);
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
  zq_extent_depth_fn fn;
  void *opaque;
  bool stopped;
};

static int
watch_extent (void *opaque, uint64_t offset, uint64_t length, uint32_t flags,
              uint32_t depth)
{
  struct stop_watch *w = opaque;

  if (w->fn (w->opaque, offset, length, flags, depth) == -1) {
    w->stopped = true;
    return -1;
  }
  return 0;
}

int
zone_block_status (struct zq_image *img, uint64_t count, uint64_t offset,
                   unsigned split, zq_extent_depth_fn fn, void *opaque)
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
      r = qcow2_block_status (img, valid, offset, split, watch_extent,
                              &watch);
      if (r != 0)
        return r == -1 ? -1 : 0;   /* stopped, or covered less */
    }
    /* At and past the write pointer the zone reads zeroes by rule, not
     * from any layer: depth 0, as unallocated clusters without a backing
     * file.
     */
    if (seg > valid &&
        watch_extent (&watch, offset + valid, seg - valid,
                      ZQ_EXTENT_HOLE | ZQ_EXTENT_ZERO, 0) == -1)
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
    zq_log_refusal (img, "%s: zone %s: zone %" PRIu32 " does not exist",
                    img->filename, op, zi);
    errno = EINVAL;
    return NULL;
  }
  if (img->readonly) {
    zq_log_refusal (img, "%s: zone %s refused: the image is open read-only",
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
  /* Writes in flight count as written: the zone is not empty. */
  if (z->cond == ZQ_ZONE_COND_IMP_OPEN || z->cond == ZQ_ZONE_COND_EXP_OPEN)
    zone_set_cond (zs, z, z->wp_admitted == z->start ? ZQ_ZONE_COND_EMPTY
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
  /* After the writes already accepted, if any. */
  pthread_mutex_lock (&img->zones->lock);
  wp = z->wp_admitted;
  pthread_mutex_unlock (&img->zones->lock);
  if (z->cond != ZQ_ZONE_COND_FULL &&
      zone_write (img, NULL, z->start + z->length - wp, wp, true,
                  ZQ_MAY_TRIM) == -1)
    return -1;
  return zones_flush (img);
}

int
zone_append (struct zq_image *img, const void *buf, uint64_t count,
             uint64_t zone_start, uint64_t *appended_at)
{
  uint32_t zi = zone_index (img, zone_start);
  struct zone *z = managed_zone (img, zi, "append");
  char why[128];

  if (z == NULL)
    return -1;
  if (zone_start != z->start)
    return refuse (img, z, zi, "zone append", zone_start, count, EINVAL,
                   "an append names the start of its zone");
  if (count == 0 || count % 512 != 0)
    return refuse (img, z, zi, "zone append", zone_start, count, EINVAL,
                   "the length must be a non-zero multiple of the 512-byte "
                   "logical block size");
  if (count > img->zones->geometry.max_append_bytes) {
    snprintf (why, sizeof why, "it is longer than max_append_bytes (%"
              PRIu32 ")", img->zones->geometry.max_append_bytes);
    return refuse (img, z, zi, "zone append", zone_start, count, EINVAL,
                   why);
  }
  return sequential_write (img, zi, buf, count, zone_start, false, 0,
                           appended_at);
}

int
zq_zone_reset (struct zq_image *img, uint32_t zi)
{
  if (managed_zone (img, zi, "reset") == NULL || zone_reset (img, zi) == -1)
    return -1;
  return zones_flush (img);
}
