/* Zones at run time: conditions, write pointers, open/active accounting,
 * and the write-pointer table on disk.
 *
 * Locking order: wp_write_lock, then lock; wp_write_lock, then the
 * image's flush_lock and meta_lock (the whole order: lib/internal.h).
 * `lock` guards the zone states and the requests queued on and in flight
 * in each zone, takes no other lock and is never held across I/O.
 * `wp_write_lock` orders every write of write-pointer entries (flush and
 * reset), so an older pointer never overwrites a newer one on disk.
 */
#ifndef ZQ_ZONES_H
#define ZQ_ZONES_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "wake-word.h"
#include "zqcow2.h"

struct zq_image;
struct zone_waiter;

/* How many sleepers one holder of a zone lock wakes after releasing it;
 * past that, at once.  A depth-16 stream wakes a handful at a time.
 */
#define ZONE_WAKE_BATCH 32

struct zone {
  uint64_t start, length, capacity;
  /* The write pointer that reads, reports and the table on disk go by:
   * the end of the writes that completed, each after all those before
   * it.
   */
  uint64_t wp;
  /* Where the next write must start: the end of the writes accepted so
   * far, some of which may still be in flight.  Equal to wp when none is.
   */
  uint64_t wp_admitted;
  uint64_t wp_on_disk;          /* what the write-pointer table says */
  uint64_t wp_flushing;         /* captured by a flush in progress */
  enum zq_zone_cond cond;       /* the state machine's condition */
  bool conventional;
  bool offline;                 /* injected, or a corrupt entry read-only */
  bool readonly;                /* injected */
  bool resetting;               /* a reset in progress */
  uint32_t resets_waiting;      /* resets waiting for the writes to drain */
  /* failing: a write in flight failed, so nothing is accepted until every
   * write in flight has finished and wp_admitted is back at wp.
   * dooming: the failed write has been retired, so the writes accepted
   * after it fail too as they finish.
   */
  bool failing, dooming;
  uint64_t failed_at;           /* the failed write's offset, for messages */
  uint64_t last_used;           /* for closing the least recently used */
  /* The requests queued on this zone, each sleeping on a wake word of
   * its own (wake-word.h), so that a state change wakes only the requests
   * it lets proceed instead of every request queued here.
   */
  struct zone_waiter *waiters;
  /* Writes parked without a thread (zq_pwrite_parked), each woken by its
   * park->wake when it may be tried again.
   */
  struct zq_park *parked;
  uint64_t progress_ns;         /* last accept or retire, monotonic */
  /* The writes accepted and not yet retired, in offset order. */
  struct zone_waiter *in_flight, *in_flight_last;
};

struct zone_set {
  struct zq_zone_geometry geometry;
  uint32_t nr_zones;
  struct zone *zones;
  uint8_t *wp_table;            /* encoded entries, for writing them */

  pthread_mutex_t lock;
  /* The queued requests whose wake words were set under lock, to be
   * woken once it is released (zone-io.c, zone_unlock).  lock guards it.
   */
  wake_word *to_wake[ZONE_WAKE_BATCH];
  uint32_t nr_to_wake;
  pthread_mutex_t wp_write_lock;
  uint32_t nr_open;             /* implicitly + explicitly open */
  uint32_t nr_active;           /* open + closed */
  uint64_t clock;
  bool little_endian;           /* table read in the old byte order */
  bool boundary_split;          /* zq_open_options.zone_boundary_split */
  uint64_t wait_timeouts;       /* zq_zone_wait_timeouts */

  /* Tests only (fault injection): called before the data of each write
   * into a sequential zone is written, without the lock held.  A
   * non-zero errno fails that write as an I/O error would.
   */
  int (*fault_hook) (void *opaque, uint64_t offset, uint64_t count);
  void *fault_opaque;
  /* Tests only: the wait of a write ahead of the pointer, in ns (0: the
   * default, zone-io.c).
   */
  uint64_t ahead_wait_ns;
};

/* Reads and validates the zoned extension and the write-pointer table.
 * Called by zq_open when the image has incompatible bit 5.
 */
int zones_open (struct zq_image *img, uint64_t file_size,
                const char *offline_zones, const char *readonly_zones);
void zones_free (struct zone_set *zs);

/* Makes data, metadata and then the write pointers durable. */
int zones_flush (struct zq_image *img);

/* Requests on a zoned image, with the zone rules (zone-io.c). */
int zone_read (struct zq_image *img, void *buf, uint64_t count,
               uint64_t offset);
/* With park NULL, waits for the write's turn; else may return ZQ_PARKED. */
int zone_write (struct zq_image *img, const void *buf, uint64_t count,
                uint64_t offset, bool zeroes, unsigned zero_flags,
                struct zq_park *park);
int zone_trim (struct zq_image *img, uint64_t count, uint64_t offset);
/* A write at the zone's write pointer, the offset chosen under the zone
 * lock and returned in *appended_at.
 */
int zone_append (struct zq_image *img, const void *buf, uint64_t count,
                 uint64_t zone_start, uint64_t *appended_at);
int zone_block_status (struct zq_image *img, uint64_t count,
                       uint64_t offset, unsigned split,
                       zq_extent_depth_fn fn, void *opaque);


#endif /* ZQ_ZONES_H */
