/* Encoding zones as qemu:zone-state extents (zone-state.h). */
#include <config.h>

#include "zone-state.h"

/* The bits every extent of the zone shares. */
static uint32_t
zone_status (const struct zq_zone *zone, unsigned zone_shift)
{
  uint32_t status = (uint32_t) zone->cond & ZONE_STATE_COND_MASK;

  status |= ((uint32_t) zone->type & 0xf) << ZONE_STATE_TYPE_SHIFT;
  if ((zone->start >> zone_shift) & 1)
    status |= ZONE_STATE_ZONE_ODD;
  status |= (uint32_t) (zone_shift & 0x3f) << ZONE_STATE_ZONE_SHIFT_SHIFT;
  return status;
}

/* Sends the part of [start, end) that lies in [from, to), in pieces that
 * fit a descriptor.
 */
static int
emit (uint64_t start, uint64_t end, uint64_t from, uint64_t to,
      uint32_t status, zone_state_fn fn, void *opaque)
{
  if (start < from)
    start = from;
  if (end > to)
    end = to;
  while (start < end) {
    uint64_t len = end - start;

    if (len > ZONE_STATE_MAX_EXTENT)
      len = ZONE_STATE_MAX_EXTENT;
    if (fn (opaque, (uint32_t) len, status) == -1)
      return -1;
    start += len;
  }
  return 0;
}

int
zone_state_extents (const struct zq_zone *zone, unsigned zone_shift,
                    uint64_t from, uint64_t to,
                    zone_state_fn fn, void *opaque)
{
  uint32_t status = zone_status (zone, zone_shift);
  uint64_t end = zone->start + zone->length;
  uint64_t cap_end, written_end;

  /* A conventional zone has no write pointer and no capacity to speak
   * of: one extent.
   */
  if (zone->type == ZQ_ZONE_TYPE_CONVENTIONAL)
    return emit (zone->start, end, from, to, status, fn, opaque);

  cap_end = zone->start + (zone->capacity < zone->length ? zone->capacity
                                                         : zone->length);
  /* The engine reports a FULL zone's pointer at the zone end; WRITTEN
   * stops at the capacity all the same.
   */
  written_end = zone->write_pointer;
  if (written_end < zone->start)
    written_end = zone->start;
  if (written_end > cap_end)
    written_end = cap_end;

  if (emit (zone->start, written_end, from, to,
            status | ZONE_STATE_WRITTEN, fn, opaque) == -1 ||
      emit (written_end, cap_end, from, to, status, fn, opaque) == -1 ||
      emit (cap_end, end, from, to,
            status | ZONE_STATE_BEYOND_CAPACITY, fn, opaque) == -1)
    return -1;
  return 0;
}
