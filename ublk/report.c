/* Zone reports for the ublk driver (report.h). */
#include <config.h>

#include <errno.h>
#include <string.h>

#include "report.h"

void
report_encode (const struct zq_zone *zones, size_t n, struct blk_zone *out)
{
  size_t i;

  for (i = 0; i < n; i++) {
    memset (&out[i], 0, sizeof out[i]);
    out[i].start = zones[i].start >> 9;
    out[i].len = zones[i].length >> 9;
    out[i].capacity = zones[i].capacity >> 9;
    out[i].wp = zones[i].write_pointer >> 9;
    out[i].type = zones[i].type;
    out[i].cond = zones[i].cond;
  }
}

/* Zones read from the engine at a time. */
#define BATCH 64

long
report_zones (struct zq_image *img, uint32_t first, uint32_t wanted,
              struct blk_zone *out, size_t room)
{
  struct zq_zone zones[BATCH];
  uint32_t filled = 0;
  int got;

  if (wanted > room)
    return -EINVAL;
  while (filled < wanted) {
    uint32_t ask = wanted - filled < BATCH ? wanted - filled : BATCH;

    got = zq_zone_report (img, first + filled, ask, zones);
    if (got == -1)
      return -(errno ? errno : EIO);
    report_encode (zones, got, &out[filled]);
    filled += got;
    if ((uint32_t) got < ask)
      break;                    /* the end of the device */
  }
  if (filled < wanted)
    memset (&out[filled], 0, sizeof out[filled]);
  return (long) wanted * (long) sizeof *out;
}
