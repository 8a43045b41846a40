/* The device's parameters, from the image: the engine's block limits
 * and zone geometry are copied, never recomputed.
 */
#include <config.h>

#include <string.h>

#include "ublk.h"

static uint8_t
log2_u32 (uint32_t n)
{
  return (uint8_t) (31 - __builtin_clz (n));
}

void
device_params (const struct device *dev, struct zq_ublk_params *p)
{
  struct ublk_param_basic *b = &p->basic;

  memset (p, 0, sizeof *p);
  p->len = sizeof *p;
  p->types = UBLK_PARAM_TYPE_BASIC;

  /* Writes are cached until a flush (or FUA): the engine's own rule. */
  b->attrs = UBLK_ATTR_VOLATILE_CACHE | UBLK_ATTR_FUA;
  if (dev->readonly)
    b->attrs |= UBLK_ATTR_READ_ONLY;
  /* A block device's sectors are 512 bytes at least; the engine asks
   * no more (1, or 512 on a zoned image).
   */
  b->logical_bs_shift = dev->limits.minimum > 512
                        ? log2_u32 (dev->limits.minimum) : 9;
  b->physical_bs_shift = 12;
  b->io_min_shift = 12;
  b->io_opt_shift = log2_u32 (dev->limits.preferred);
  b->max_sectors = dev->max_io_bytes >> 9;
  b->dev_sectors = dev->size >> 9;

  if (dev->zoned) {
    const struct zq_zone_geometry *g = &dev->geometry;
    uint32_t append = g->max_append_bytes < dev->max_io_bytes
                      ? g->max_append_bytes : dev->max_io_bytes;

    p->types |= UBLK_PARAM_TYPE_ZONED;
    b->chunk_sectors = (uint32_t) (g->zone_size >> 9);
    p->zoned.max_open_zones = g->max_open_zones;
    p->zoned.max_active_zones = g->max_active_zones;
    p->zoned.max_zone_append_sectors = append >> 9;
  }
  else if (!dev->readonly) {
    /* Discard deallocates whole clusters (the preferred size); write
     * zeroes any range.
     */
    p->types |= UBLK_PARAM_TYPE_DISCARD;
    p->discard.discard_granularity = dev->limits.preferred;
    p->discard.max_discard_sectors = UINT32_C (1) << 21;        /* 1 GiB */
    p->discard.max_write_zeroes_sectors = UINT32_C (1) << 21;
    p->discard.max_discard_segments = 1;
  }
}
