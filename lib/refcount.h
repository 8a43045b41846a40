/* Host cluster refcounts: reading, updating, allocating free clusters. */
#ifndef ZQ_REFCOUNT_H
#define ZQ_REFCOUNT_H

#include <stdint.h>

struct zq_image;

/* One refcount in a refcount block of 2^order-bit entries.  Sub-byte
 * entries are packed least significant bit first, wider ones are
 * big-endian.
 */
uint64_t refblock_entry_get (const uint8_t *block, unsigned order,
                             uint64_t index);
void refblock_entry_set (uint8_t *block, unsigned order, uint64_t index,
                         uint64_t value);

/* All of these need meta_lock. */
int refcount_get (struct zq_image *img, uint64_t cluster, uint64_t *value);
int refcount_update (struct zq_image *img, uint64_t cluster, int64_t delta);

/* How many of the clusters that refcount table entry ti covers, below
 * cluster `end`, are in use (0 without a block).
 */
int refcount_count_in_use (struct zq_image *img, uint64_t ti, uint64_t end,
                           uint64_t *in_use);

/* Writes refcount table entry ti (from img->refcount_table) to the file,
 * in place, unsynced.
 */
int refcount_write_table_entry (struct zq_image *img, uint64_t ti);

/* Allocates between 1 and `want` contiguous free host clusters, sets their
 * refcount to 1 and returns the first one's host offset and the count.
 * Fewer than `want` come back when the free run is shorter: call again.
 */
int refcount_alloc (struct zq_image *img, uint64_t want,
                    uint64_t *host_offset, uint64_t *got);

#endif /* ZQ_REFCOUNT_H */
