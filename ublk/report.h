/* Zone reports as the ublk driver takes them: struct blk_zone entries
 * (linux/blkzoned.h), in 512-byte sectors.
 */
#ifndef ZQ_UBLK_REPORT_H
#define ZQ_UBLK_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <linux/blkzoned.h>

#include "zqcow2.h"

/* Encodes the engine's zones[0 .. n) into out[0 .. n). */
void report_encode (const struct zq_zone *zones, size_t n,
                    struct blk_zone *out);

/* Answers REPORT_ZONES: fills out (room for `room` entries) with up to
 * `wanted` zones from zone `first`, ending the list with a zeroed entry
 * when it holds fewer than wanted (as the driver expects).  Returns the
 * bytes of out to give back to the driver (wanted entries), or -errno.
 */
long report_zones (struct zq_image *img, uint32_t first, uint32_t wanted,
                   struct blk_zone *out, size_t room);

#endif /* ZQ_UBLK_REPORT_H */
