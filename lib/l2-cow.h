/* Copy-on-write of L2 tables shared with internal snapshots. */
#ifndef ZQ_L2_COW_H
#define ZQ_L2_COW_H

#include <stdint.h>

struct zq_image;

/* Gives the active layer its own copy of the L2 table that L1 entry
 * l1_index points at (an entry without OFLAG_COPIED), and returns it in
 * *l2_table, valid until the next call on the L2 cache.  meta_lock held.
 */
int l2_copy_on_write (struct zq_image *img, uint64_t l1_index,
                      uint8_t **l2_table);

#endif /* ZQ_L2_COW_H */
