/* Helpers shared by zones.c and zone-io.c only. */
#ifndef ZQ_ZONES_INTERNAL_H
#define ZQ_ZONES_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "wake-word.h"
#include "zones.h"

/* A request on a sequential zone, on its thread's stack: linked into
 * zone->waiters while it waits for its turn, then, for a write, into
 * zone->in_flight from when it is accepted until it is retired.
 * zs->lock guards it.
 */
enum zone_req_state {
  ZONE_REQ_RUNNING,             /* accepted, its data being written */
  ZONE_REQ_WRITTEN,             /* its data written */
  ZONE_REQ_FAILED,              /* writing its data failed with error */
};

struct zone_waiter {
  struct zone_waiter *next;
  /* Where the write starts: it is woken once the next write must start
   * there (to proceed) or beyond (to fail).
   */
  uint64_t offset;
  uint64_t wp_after;            /* the write pointer once it is retired */
  bool reset;                   /* a reset, waiting for writes to drain */
  bool append;                  /* a zone append: offset chosen at its turn */
  /* A write of count bytes (zeroes: write zeroes) that may be accepted
   * by another thread when its turn comes (count 0: it may not).
   */
  uint64_t count;
  bool zeroes;
  /* Accepted by another thread; set before the wake word, so the woken
   * thread sees it without the lock.
   */
  _Atomic bool accepted;
  enum zone_req_state state;
  int error;
  /* Retired: the pointer has passed it, or it failed, or (doomed) a
   * write before it failed.  Its thread may return only then.
   */
  bool retired, doomed;
  wake_word wake;               /* set when a change concerns it */
};

/* The condition reported to clients: injected faults win. */
enum zq_zone_cond zone_reported_cond (const struct zone *z);

/* Moves a zone to a condition, keeping the open/active counts.
 * zs->lock held.
 */
void zone_set_cond (struct zone_set *zs, struct zone *z,
                    enum zq_zone_cond cond);

/* Opens a zone (implicitly or explicitly), closing the least recently
 * used implicitly open zone if the open limit needs it.  Returns 0, or
 * ENOSPC with the reason in why.  zs->lock held.
 */
int zone_open_locked (struct zone_set *zs, struct zone *z,
                      enum zq_zone_cond to, char *why, size_t why_len);

void zone_describe (const struct zone *z, struct zq_zone *out);

/* Makes wp zone i's write pointer on disk: writes its entry and syncs,
 * unless the table already says wp.  Returns once it is durable.
 */
int zone_persist_wp (struct zq_image *img, uint32_t i, uint64_t wp);

#endif /* ZQ_ZONES_INTERNAL_H */
