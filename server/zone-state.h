/* The qemu:zone-state metadata context (docs nbd-zones.md): how one zone
 * of a zone report becomes block status extents.  Pure arithmetic on a
 * struct zq_zone, so that it can be checked without an image.
 */
#ifndef ZQ_SERVER_ZONE_STATE_H
#define ZQ_SERVER_ZONE_STATE_H

#include <stdint.h>

#include "zqcow2.h"

/* Status bits of a qemu:zone-state extent. */
#define ZONE_STATE_COND_MASK       0x0000000fu /* ZBC/ZNS condition */
#define ZONE_STATE_TYPE_SHIFT      4           /* 1 conv., 2 seq. required */
#define ZONE_STATE_WRITTEN         (1u << 8)   /* below the write pointer */
#define ZONE_STATE_BEYOND_CAPACITY (1u << 9)   /* start+capacity .. end */
#define ZONE_STATE_ZONE_ODD        (1u << 10)  /* odd zone index */
#define ZONE_STATE_ZONE_SHIFT_SHIFT 16         /* log2 (zone size), 6 bits */

/* The longest extent sent: a descriptor's length is 32 bits, so bigger
 * zones come as several extents with the same status.
 */
#define ZONE_STATE_MAX_EXTENT      UINT32_C (0xfffff000)

/* Receives one extent; returning -1 stops the walk. */
typedef int (*zone_state_fn) (void *opaque, uint32_t length,
                              uint32_t status);

/* Calls fn for the extents of one zone that lie in [from, to), in order:
 * an extent never crosses the zone's boundaries, and a sequential zone is
 * split at its write pointer and at start + capacity.  zone_shift is
 * log2 of the zone size.  Returns 0, or -1 if fn stopped the walk.
 */
int zone_state_extents (const struct zq_zone *zone, unsigned zone_shift,
                        uint64_t from, uint64_t to,
                        zone_state_fn fn, void *opaque);

#endif /* ZQ_SERVER_ZONE_STATE_H */
