/* Extended L2 entries (incompatible bit 4): each cluster is 32
 * subclusters, each allocated, zero or unallocated on its own.
 */
#ifndef ZQ_SUBCLUSTER_H
#define ZQ_SUBCLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

struct map_run;

/* map_lookup for extended L2 images: runs end where the type of a
 * subcluster changes.  meta_lock held.
 */
int subcluster_lookup (struct zq_image *img, uint64_t offset,
                       uint64_t max_bytes, struct map_run *run);

#endif /* ZQ_SUBCLUSTER_H */
