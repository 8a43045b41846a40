/* Helpers shared by zones.c and zone-io.c only. */
#ifndef ZQ_ZONES_INTERNAL_H
#define ZQ_ZONES_INTERNAL_H

#include <pthread.h>
#include <stddef.h>

#include "zones.h"

/* A request queued on a zone, on its thread's stack while it waits.
 * Linked into zone->waiters under zs->lock.
 */
struct zone_waiter {
  struct zone_waiter *next;
  /* The write pointer the request needs: it is woken once the pointer
   * reaches it (to proceed) or passes it (to fail).  A reset waits with
   * the zone start, so any completion wakes it.
   */
  uint64_t offset;
  pthread_cond_t wake;
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

/* Writes one zone's write-pointer entry and syncs. */
int zone_persist_wp (struct zq_image *img, uint32_t i, uint64_t wp);

#endif /* ZQ_ZONES_INTERNAL_H */
