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
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "wake-word.h"
#include "zones-internal.h"

/* How long a write that arrives ahead of the write pointer waits for the
 * writes before it (the NBD side of Linux's zone write plugging): from
 * the later of its arrival and the last progress in its zone, so that a
 * deep queue that keeps moving never times out, while a gap that is
 * never filled fails the writes behind it.  Five seconds, not one: a
 * server inside a QEMU guest without KVM, on a loaded machine, can go
 * more than a second without running a write it was sent, and the wait
 * only ever delays the error of a client that leaves a gap.  The fuzz
 * build (tests/fuzz/fuzz.mk) makes it 0, so that a fuzzed write ahead of
 * the pointer does not stall its input.
 */
#ifndef AHEAD_WAIT_SECONDS
#define AHEAD_WAIT_SECONDS 5
#endif

static uint64_t
ahead_wait_ns (const struct zone_set *zs)
{
  return zs->ahead_wait_ns ? zs->ahead_wait_ns
                           : (uint64_t) AHEAD_WAIT_SECONDS * 1000000000;
}

static uint64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}

/* When a write waiting since `since` gives up.  zs->lock held. */
static uint64_t
wait_deadline (const struct zone_set *zs, const struct zone *z,
               uint64_t since)
{
  return (since > z->progress_ns ? since : z->progress_ns) +
         ahead_wait_ns (zs);
}

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

/* Sets a queued request's wake word; the system call that wakes its
 * thread, if it sleeps, is made by zone_unlock, so that the thread does
 * not wake only to block on zs->lock.  Past ZONE_WAKE_BATCH sleepers it
 * is made at once.  zs->lock held.
 */
static void
zone_wake (struct zone_set *zs, wake_word *w)
{
  if (!wake_word_set (w))
    return;
  if (zs->nr_to_wake < ZONE_WAKE_BATCH)
    zs->to_wake[zs->nr_to_wake++] = w;
  else
    wake_word_wake (w);
}

/* Releases zs->lock, then wakes the sleepers zone_wake left for it. */
static void
zone_unlock (struct zone_set *zs)
{
  wake_word *to_wake[ZONE_WAKE_BATCH];
  uint32_t i, n = zs->nr_to_wake;

  memcpy (to_wake, zs->to_wake, n * sizeof to_wake[0]);
  zs->nr_to_wake = 0;
  pthread_mutex_unlock (&zs->lock);
  for (i = 0; i < n; i++)
    wake_word_wake (to_wake[i]);
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
  zone_unlock (zs);
  return valid < seg ? valid : seg;
}

/* Whether a state change concerns the queued request w: a write's turn
 * comes when the next write must start at its offset, or has passed it,
 * or the zone is full (then it fails), unless a reset or the draining
 * of a failed write holds writes back; a reset's comes when no write is
 * in flight.
 */
static bool
write_may_proceed (const struct zone *z, uint64_t offset)
{
  if (z->cond == ZQ_ZONE_COND_FULL)
    return true;
  if (z->resetting || z->resets_waiting > 0 || z->failing)
    return false;
  return offset <= z->wp_admitted;
}

static bool
may_proceed (const struct zone *z, const struct zone_waiter *w)
{
  if (w->reset)
    return z->in_flight == NULL && !z->resetting;
  /* An append takes whatever offset is next. */
  return write_may_proceed (z, w->append ? z->wp_admitted : w->offset);
}

static void accept_queued (struct zone_set *zs, struct zone *z);

/* After any change of the zone's state: accepts the queued writes whose
 * turn has come (accept_queued), then wakes the queued requests it
 * concerns, not the others, which could only go back to sleep.  A parked
 * write leaves the zone's queue as its owner is told to retry it.  A
 * wake counts as progress: the write the others wait for has arrived,
 * and a busy server may take a while to run it.
 * zs->lock held.
 */
static void
wake_ready (struct zone_set *zs, struct zone *z)
{
  struct zone_waiter *w;
  struct zq_park **p, *park;

  accept_queued (zs, z);
  for (w = z->waiters; w != NULL; w = w->next)
    if (may_proceed (z, w)) {
      zone_wake (zs, &w->wake);
      z->progress_ns = now_ns ();
    }
  for (p = &z->parked; (park = *p) != NULL; ) {
    if (write_may_proceed (z, park->offset)) {
      *p = park->next;
      park->next = NULL;
      park->wake (park);
      z->progress_ns = now_ns ();
    }
    else
      p = &park->next;
  }
}

/* Queues the request w on zone z and sleeps until a state change
 * concerns it or the deadline (CLOCK_MONOTONIC ns; 0: none) passes.
 * Returns true if accept_queued accepted it meanwhile: then zs->lock is
 * no longer held, as the write's thread goes straight to its data.
 * Else returns with zs->lock held again and w off the queue.
 * zs->lock held.
 */
static bool
wait_on_zone (struct zone_set *zs, struct zone *z, struct zone_waiter *w,
              uint64_t deadline_ns)
{
  struct zone_waiter **p;

  w->next = z->waiters;
  z->waiters = w;
  wake_word_arm (&w->wake);
  zone_unlock (zs);
  wake_word_sleep (&w->wake, deadline_ns);
  /* accept_queued sets accepted before the wake word (release), so a
   * wake for it shows it here; any other wake, or a timeout, looks again
   * under the lock, where an acceptance that raced the timeout shows.
   */
  if (atomic_load_explicit (&w->accepted, memory_order_acquire))
    return true;
  pthread_mutex_lock (&zs->lock);
  if (atomic_load_explicit (&w->accepted, memory_order_relaxed))
    return false;               /* accept_queued took it off the queue */
  for (p = &z->waiters; *p != w; p = &(*p)->next)
    ;
  *p = w->next;
  return false;
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

/* take_turn's answer for a write that accept_queued accepted on its
 * behalf: zs->lock was released, and the write goes to its data.
 */
#define TURN_ACCEPTED_UNLOCKED (-2)

static int
wait_timed_out (struct zone_set *zs, char *why, size_t why_len)
{
  zs->wait_timeouts++;
  snprintf (why, why_len, "it is ahead of the write pointer, and the "
            "writes before it did not arrive within %g seconds of the last "
            "progress in the zone", ahead_wait_ns (zs) / 1e9);
  return EIO;
}

/* Waits (park NULL) or parks for the turn of the write at req->offset,
 * the wait counted from since.  An append has no offset of its own: it
 * is placed where the writes accepted before it end, which is always its
 * turn unless a reset or a failed write holds writes back, so it waits
 * without a deadline (and never parks).  Returns 0 when it is its turn,
 * TURN_ACCEPTED_UNLOCKED when another thread accepted it (accept_queued:
 * only a write with a count) and released zs->lock, ZQ_PARKED, or the
 * errno to refuse it with and the reason in why.
 * zs->lock held.
 */
static int
take_turn (struct zone_set *zs, struct zone *z, struct zone_waiter *req,
           struct zq_park *park, uint64_t since, char *why, size_t why_len)
{
  uint64_t end;
  int r;

  for (;;) {
    /* By another thread, as this one took the lock: see accept_queued. */
    if (atomic_load_explicit (&req->accepted, memory_order_relaxed))
      return 0;
    if (req->append)
      req->offset = z->wp_admitted;
    if ((r = check_turn (z, req->offset, why, why_len)) != EAGAIN)
      break;
    if (req->append) {
      wait_on_zone (zs, z, req, 0);
      continue;
    }
    end = wait_deadline (zs, z, since);
    if ((park != NULL && park->expired) || now_ns () >= end)
      return wait_timed_out (zs, why, why_len);
    if (park != NULL) {
      park->offset = req->offset;
      park->next = z->parked;
      z->parked = park;
      return ZQ_PARKED;
    }
    if (wait_on_zone (zs, z, req, end))
      return TURN_ACCEPTED_UNLOCKED;
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

/* Puts an accepted write at the end of the zone's writes in flight.
 * zs->lock held.
 */
static void
admit_write (struct zone_set *zs, struct zone *z, struct zone_waiter *req)
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
  z->progress_ns = now_ns ();
}

/* Accepts a write and lets the writes that follow it start at once,
 * before it completes.  zs->lock held.
 */
static void
accept_write (struct zone_set *zs, struct zone *z, struct zone_waiter *req)
{
  admit_write (zs, z, req);
  wake_ready (zs, z);
}

/* Accepts, on their behalf, the queued writes whose turn has come, in
 * offset order, with the checks their own threads would make, then wakes
 * each to write its data.  Writes that arrived while one before them was
 * late then start together once it is accepted, instead of each waking
 * the next in turn, a convoy of one context switch a write.  A write the
 * zone cannot take (its capacity, the open or active zone limits) is not
 * accepted here: wake_ready wakes it and its thread refuses it with the
 * reason.  zs->lock held.
 */
static void
accept_queued (struct zone_set *zs, struct zone *z)
{
  struct zone_waiter **p, *w;
  char why[256];

  for (p = &z->waiters; (w = *p) != NULL; ) {
    if (w->count == 0 || w->offset != z->wp_admitted ||
        check_turn (z, w->offset, why, sizeof why) != 0 ||
        check_room (zs, z, w, w->offset + w->count, w->zeroes,
                    why, sizeof why) != 0) {
      p = &w->next;
      continue;
    }
    /* Off the queue first: admit_write links it into in_flight. */
    *p = w->next;
    admit_write (zs, z, w);
    atomic_store_explicit (&w->accepted, true, memory_order_release);
    zone_wake (zs, &w->wake);
    p = &z->waiters;            /* the next write may be anywhere */
  }
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
    z->progress_ns = now_ns ();
    zone_wake (zs, &h->wake);
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
  wake_ready (zs, z);
}

static int
qcow2_write_or_zero (struct zq_image *img, const void *buf, uint64_t count,
                     uint64_t offset, bool zeroes, unsigned zero_flags)
{
  int r;

  if (!zeroes)
    return qcow2_write (img, buf, count, offset);
  r = qcow2_zero (img, count, offset, zero_flags);
  if (r == 0)
    release_if_many_pending (img);
  return r;
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
  if (!req->retired) {
    /* Only its retirement sets the word of a write in flight, and what
     * retire_writes wrote of req is visible once it is set: a write that
     * succeeded returns without taking the lock again.
     */
    wake_word_arm (&req->wake);
    zone_unlock (zs);
    while (!wake_word_sleep (&req->wake, 0))
      ;
    if (req->state == ZONE_REQ_WRITTEN && !req->doomed)
      return 0;
    pthread_mutex_lock (&zs->lock);
  }
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
  zone_unlock (zs);
  return r;
}

/* When the write with this park record first asked for its turn (now,
 * without one).  zs->lock held.
 */
static uint64_t
park_since (struct zq_park *park)
{
  if (park == NULL)
    return now_ns ();
  if (park->since_ns == 0)
    park->since_ns = now_ns ();
  return park->since_ns;
}

/* A write into a sequential zone.  Writes are accepted in write-pointer
 * order, each as soon as the one before it has been accepted, and run
 * concurrently; the pointer advances over them in order as they
 * complete, and each returns only once it has.  When one fails, the
 * pointer stays at its start, the writes accepted after it fail with
 * EIO, and writing resumes at the pointer once they have all finished.
 * An append (appended_at not NULL) is a write whose offset is chosen
 * when it is accepted, and returned in *appended_at.
 */
static int
sequential_write (struct zq_image *img, uint32_t zi, const void *buf,
                  uint64_t count, uint64_t offset, bool zeroes,
                  unsigned zero_flags, struct zq_park *park,
                  uint64_t *appended_at)
{
  struct zone_set *zs = img->zones;
  struct zone *z = &zs->zones[zi];
  const char *op = appended_at ? "zone append" : zeroes ? "write zeroes"
                                                        : "write";
  struct zone_waiter req = { .offset = offset,
                             .append = appended_at != NULL,
                             .count = appended_at ? 0 : count,
                             .zeroes = zeroes };
  char why[256];
  int r;

  pthread_mutex_lock (&zs->lock);
  r = take_turn (zs, z, &req, park, park_since (park), why, sizeof why);
  if (r != TURN_ACCEPTED_UNLOCKED) {
    bool accepted = atomic_load_explicit (&req.accepted,
                                          memory_order_relaxed);

    offset = req.offset;
    if (r == 0 && !accepted)
      r = check_room (zs, z, &req, offset + count, zeroes, why, sizeof why);
    if (r != 0) {
      if (r != ZQ_PARKED)
        r = refuse (img, z, zi, op, offset, count, r, why);
      zone_unlock (zs);
      return r;
    }
    if (!accepted)
      accept_write (zs, z, &req);
    zone_unlock (zs);
  }
  if (appended_at)
    *appended_at = offset;

  r = write_zone_data (img, buf, count, offset, zeroes, zero_flags);
  r = complete_write (img, zi, &req, r == 0 ? 0 : errno ? errno : EIO, op,
                      count);
  return r;
}

/* One zone's piece of a write that crosses zone boundaries. */
struct piece {
  uint32_t zi;
  uint64_t offset, count;
  bool sequential;
  enum zq_zone_cond cond_before;  /* to undo its zone's opening */
  struct zone_waiter req;
};

#define PIECES_ON_STACK 4

/* Cuts [offset, offset + count) at the zone boundaries into pieces[n],
 * and checks what can be checked without the lock.  Returns 0, or the
 * errno to refuse the write with, the piece at fault in *bad and the
 * reason in why.
 */
static int
cut_pieces (struct zq_image *img, struct piece *pieces, uint32_t n,
            uint64_t offset, uint64_t count, uint32_t *bad, char *why,
            size_t why_len)
{
  struct zone_set *zs = img->zones;
  uint64_t end = offset + count;
  uint32_t i;

  for (i = 0; i < n; i++) {
    struct piece *pc = &pieces[i];
    const struct zone *z = &zs->zones[zone_index (img, offset) + i];
    uint64_t piece_end = z->start + z->length < end ? z->start + z->length
                                                    : end;

    pc->zi = zone_index (img, offset) + i;
    pc->offset = i == 0 ? offset : z->start;
    pc->count = piece_end - pc->offset;
    pc->sequential = !z->conventional;
    *bad = i;
    if (z->offline) {
      snprintf (why, why_len, "it crosses the zone boundary, and the zone "
                "of its piece is offline");
      return EIO;
    }
    if (z->readonly) {
      snprintf (why, why_len, "it crosses the zone boundary, and the zone "
                "of its piece is read-only");
      return EPERM;
    }
    if (z->conventional)
      continue;
    if (pc->offset % 512 != 0 || pc->count % 512 != 0) {
      snprintf (why, why_len, "offset and length must be multiples of the "
                "512-byte logical block size");
      return EINVAL;
    }
    if (i < n - 1 && z->capacity < z->length) {
      snprintf (why, why_len, "it crosses the zone boundary, and its piece "
                "in this zone goes past the zone capacity");
      return EIO;
    }
  }
  return 0;
}

/* Waits (or parks) until every sequential piece may be accepted, each at
 * its zone's write pointer, and checks each one's room, undoing the
 * openings of the pieces before when one has none.  Returns 0, ZQ_PARKED
 * or the errno to refuse with, the piece in *bad.  zs->lock held.
 */
static int
take_pieces_turn (struct zone_set *zs, struct piece *pieces, uint32_t n,
                  bool zeroes, struct zq_park *park, uint32_t *bad,
                  char *why, size_t why_len)
{
  uint64_t since = park_since (park);
  uint32_t i, j, wait_on;
  int r;

  /* A piece that can never be accepted fails the write at once; else it
   * waits for the first piece that must, and all are checked again, as
   * any zone may have changed meanwhile.
   */
  for (;;) {
    wait_on = n;
    for (i = 0; i < n; i++) {
      if (!pieces[i].sequential)
        continue;
      r = check_turn (&zs->zones[pieces[i].zi], pieces[i].offset, why,
                      why_len);
      if (r == EAGAIN && wait_on == n)
        wait_on = i;
      else if (r != 0 && r != EAGAIN) {
        *bad = i;
        return r;
      }
    }
    if (wait_on == n)
      break;
    *bad = wait_on;
    /* A piece has no count, so no other thread accepts it: take_turn
     * never answers TURN_ACCEPTED_UNLOCKED here.
     */
    r = take_turn (zs, &zs->zones[pieces[wait_on].zi], &pieces[wait_on].req,
                   park, since, why, why_len);
    if (r != 0)
      return r;
  }
  /* The open zone limit closes the least recently used zone to open
   * another: not one of these, when it can help it.
   */
  for (i = 0; i < n; i++)
    zs->zones[pieces[i].zi].last_used = ++zs->clock;
  for (i = 0; i < n; i++) {
    struct zone *z = &zs->zones[pieces[i].zi];

    if (!pieces[i].sequential)
      continue;
    pieces[i].cond_before = z->cond;
    r = check_room (zs, z, &pieces[i].req, pieces[i].offset + pieces[i].count,
                    zeroes, why, why_len);
    if (r != 0) {
      *bad = i;
      for (j = 0; j < i; j++)
        if (pieces[j].sequential &&
            zs->zones[pieces[j].zi].cond != pieces[j].cond_before)
          zone_set_cond (zs, &zs->zones[pieces[j].zi],
                         pieces[j].cond_before);
      return r;
    }
  }
  return 0;
}

/* A write that crosses zone boundaries, under zone_boundary_split: the
 * pieces are accepted together once each is valid in its own zone, the
 * data is written at once, and each piece then completes in its zone.
 * The write fails if any piece does.  A piece's zone may still advance
 * when a piece before it is doomed by an earlier write's failure in that
 * piece's zone: the client then sees the error, as it would after any
 * failed write whose data partly reached the disk.
 */
static int
split_write (struct zq_image *img, const void *buf, uint64_t count,
             uint64_t offset, bool zeroes, unsigned zero_flags,
             struct zq_park *park)
{
  struct zone_set *zs = img->zones;
  const char *op = zeroes ? "write zeroes" : "write";
  uint32_t n = zone_index (img, offset + count - 1) - zone_index (img, offset)
               + 1;
  struct piece stack[PIECES_ON_STACK], *pieces = stack;
  uint32_t i, bad = 0;
  char why[256];
  int r, err = 0;

  /* Crossing more than a few zones needs a zone smaller than a request:
   * rare, so it may allocate.
   */
  if (n > PIECES_ON_STACK && (pieces = calloc (n, sizeof *pieces)) == NULL) {
    zq_error ("%s: %s at 0x%" PRIx64 " length %" PRIu64 ": out of memory "
              "for its %" PRIu32 " pieces", img->filename, op, offset, count,
              n);
    errno = ENOMEM;
    return -1;
  }
  memset (pieces, 0, n * sizeof *pieces);
  r = cut_pieces (img, pieces, n, offset, count, &bad, why, sizeof why);
  if (r != 0) {
    r = refuse (img, &zs->zones[pieces[bad].zi], pieces[bad].zi, op, offset,
                count, r, why);
    goto out;
  }
  for (i = 0; i < n; i++)
    pieces[i].req.offset = pieces[i].offset;

  pthread_mutex_lock (&zs->lock);
  r = take_pieces_turn (zs, pieces, n, zeroes, park, &bad, why, sizeof why);
  if (r != 0) {
    char piece_why[400];

    snprintf (piece_why, sizeof piece_why, "it crosses the zone boundary, "
              "and its piece at 0x%" PRIx64 " length %" PRIu64 " in this "
              "zone is refused: %s", pieces[bad].offset, pieces[bad].count,
              why);
    if (r != ZQ_PARKED)
      r = refuse (img, &zs->zones[pieces[bad].zi], pieces[bad].zi, op,
                  offset, count, r, piece_why);
    zone_unlock (zs);
    goto out;
  }
  for (i = 0; i < n; i++)
    if (pieces[i].sequential)
      accept_write (zs, &zs->zones[pieces[i].zi], &pieces[i].req);
  zone_unlock (zs);

  if (write_zone_data (img, buf, count, offset, zeroes, zero_flags) == -1)
    err = errno ? errno : EIO;
  for (i = 0; i < n; i++)
    if (pieces[i].sequential &&
        complete_write (img, pieces[i].zi, &pieces[i].req, err, op,
                        pieces[i].count) == -1 && r == 0) {
      r = -1;
      err = errno;
    }
  if (r == -1)
    errno = err;

 out:
  if (pieces != stack) {
    err = errno;
    free (pieces);
    errno = err;
  }
  return r;
}

int
zone_write (struct zq_image *img, const void *buf, uint64_t count,
            uint64_t offset, bool zeroes, unsigned zero_flags,
            struct zq_park *park)
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
    if (zs->boundary_split)
      return split_write (img, buf, count, offset, zeroes, zero_flags, park);
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
                           park, NULL);
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

  pthread_mutex_lock (&zs->lock);
  z->resets_waiting++;
  while (z->in_flight != NULL || z->resetting)
    wait_on_zone (zs, z, &waiter, 0);
  z->resets_waiting--;
  z->resetting = true;
  z->wp = z->wp_admitted = z->start;
  zone_set_cond (zs, z, ZQ_ZONE_COND_EMPTY);
  zone_unlock (zs);

  /* Whether the pointer on disk is already the start is decided there,
   * after any flush that took the old pointer has written it.
   */
  r = zone_persist_wp (img, zi, z->start);
  if (r == 0 && (r = qcow2_trim (img, z->length, z->start)) == 0)
    release_if_many_pending (img);

  pthread_mutex_lock (&zs->lock);
  z->resetting = false;
  z->progress_ns = now_ns ();
  wake_ready (zs, z);
  zone_unlock (zs);
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
      release_if_many_pending (img);
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
  zone_unlock (zs);
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
  zone_unlock (zs);
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
                  ZQ_MAY_TRIM, NULL) == -1)
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
  return sequential_write (img, zi, buf, count, zone_start, false, 0, NULL,
                           appended_at);
}

int
zq_zone_reset (struct zq_image *img, uint32_t zi)
{
  if (managed_zone (img, zi, "reset") == NULL || zone_reset (img, zi) == -1)
    return -1;
  return zones_flush (img);
}

/* Parked writes whose zone has made no progress within the wait. */
void
zq_parked_expire (struct zq_image *img)
{
  struct zone_set *zs = img->zones;
  struct zq_park **p, *park;
  uint64_t now;
  uint32_t i;

  if (zs == NULL)
    return;
  now = now_ns ();
  pthread_mutex_lock (&zs->lock);
  for (i = 0; i < zs->nr_zones; i++) {
    struct zone *z = &zs->zones[i];

    for (p = &z->parked; (park = *p) != NULL; ) {
      if (now >= wait_deadline (zs, z, park->since_ns)) {
        *p = park->next;
        park->next = NULL;
        park->expired = true;
        park->wake (park);
      }
      else
        p = &park->next;
    }
  }
  zone_unlock (zs);
}

uint64_t
zq_zone_wait_timeouts (struct zq_image *img)
{
  struct zone_set *zs = img->zones;
  uint64_t n;

  if (zs == NULL)
    return 0;
  pthread_mutex_lock (&zs->lock);
  n = zs->wait_timeouts;
  zone_unlock (zs);
  return n;
}
