/* Zones at run time: conditions, write pointers, open/active accounting,
 * and the write-pointer table on disk.
 *
 * Locking order: wp_write_lock, then lock, then the image's meta_lock.
 * `lock` guards the zone states and is never held across I/O.
 * `wp_write_lock` orders every write of write-pointer entries (flush and
 * reset), so an older pointer never overwrites a newer one on disk.
 */
#ifndef ZQ_ZONES_H
#define ZQ_ZONES_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "zqcow2.h"

struct zq_image;
struct zone_waiter;

struct zone {
  uint64_t start, length, capacity;
  uint64_t wp;                  /* end of the writes that completed */
  uint64_t wp_on_disk;          /* what the write-pointer table says */
  uint64_t wp_flushing;         /* captured by a flush in progress */
  enum zq_zone_cond cond;       /* the state machine's condition */
  bool conventional;
  bool offline;                 /* injected, or a corrupt entry read-only */
  bool readonly;                /* injected */
  bool busy;                    /* a write, finish or reset in progress */
  uint64_t last_used;           /* for closing the least recently used */
  /* The requests queued on this zone, each waiting on a condition
   * variable of its own, so that a completion wakes only the request it
   * lets proceed instead of every request queued here.
   */
  struct zone_waiter *waiters;
};

struct zone_set {
  struct zq_zone_geometry geometry;
  uint32_t nr_zones;
  struct zone *zones;
  uint8_t *wp_table;            /* encoded entries, for writing them */

  pthread_mutex_t lock;
  pthread_condattr_t waiter_attr;  /* waits are bounded in monotonic time */
  bool waiter_attr_ready;
  pthread_mutex_t wp_write_lock;
  uint32_t nr_open;             /* implicitly + explicitly open */
  uint32_t nr_active;           /* open + closed */
  uint64_t clock;
  bool little_endian;           /* table read in the old byte order */
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
int zone_write (struct zq_image *img, const void *buf, uint64_t count,
                uint64_t offset, bool zeroes, unsigned zero_flags);
int zone_trim (struct zq_image *img, uint64_t count, uint64_t offset);
int zone_block_status (struct zq_image *img, uint64_t count,
                       uint64_t offset, zq_extent_fn fn, void *opaque);


#endif /* ZQ_ZONES_H */
