/* One ublk request as engine calls.  The engine keeps every zone and
 * qcow2 rule; this file only translates: sectors to bytes, the request's
 * flags to the engine's, the engine's errno to the result.  With
 * UBLK_F_USER_COPY the data is copied between the request and buf by
 * pread and pwrite on /dev/ublkcN.
 */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "report.h"
#include "ublk.h"

/* -errno of a failed engine call (which logged why). */
static int
engine_failed (void)
{
  return errno ? -errno : -EIO;
}

/* Moves len bytes between buf and the request's buffer in the driver
 * (to_driver: a read's data or a zone report).
 */
static int
copy_data (const struct device *dev, void *buf, uint64_t len, uint64_t pos,
           bool to_driver)
{
  ssize_t n = to_driver ? pwrite (dev->char_fd, buf, len, (off_t) pos)
                        : pread (dev->char_fd, buf, len, (off_t) pos);

  if (n == (ssize_t) len)
    return 0;
  ublk_error ("%s a request's data %s the driver: %s",
              to_driver ? "writing" : "reading", to_driver ? "to" : "from",
              n < 0 ? strerror (errno) : "short transfer");
  return n < 0 ? -errno : -EIO;
}

/* Reset all: every sequential zone that has been written.  Offline and
 * read-only zones are passed over, as the block layer does.
 */
static int
reset_all (const struct device *dev)
{
  struct zq_zone zones[64];
  uint32_t first = dev->geometry.conventional_zones;
  int got, i;

  while ((got = zq_zone_report (dev->img, first, 64, zones)) > 0) {
    for (i = 0; i < got; i++) {
      enum zq_zone_cond cond = zones[i].cond;
      if (zones[i].type == ZQ_ZONE_TYPE_SEQWRITE_REQ &&
          cond != ZQ_ZONE_COND_EMPTY && cond != ZQ_ZONE_COND_OFFLINE &&
          cond != ZQ_ZONE_COND_READONLY &&
          zq_zone_reset (dev->img, first + i) == -1)
        return engine_failed ();
    }
    first += got;
  }
  return got < 0 ? engine_failed () : 0;
}

int
request_run (const struct device *dev, const struct ublksrv_io_desc *iod,
             void *buf, uint64_t buf_pos, uint64_t *append_sector)
{
  unsigned op = iod->op_flags & 0xff;
  uint64_t offset = iod->start_sector << 9;
  uint64_t len = (uint64_t) iod->nr_sectors << 9;
  unsigned fua = (iod->op_flags & UBLK_IO_F_FUA) ? ZQ_FUA : 0;
  uint32_t zone = dev->zoned ? (uint32_t) (offset >> dev->geometry.zone_shift)
                             : 0;
  uint64_t at;
  int r;

  if ((op == UBLK_IO_OP_READ || op == UBLK_IO_OP_WRITE ||
       op == UBLK_IO_OP_ZONE_APPEND) && len > dev->max_io_bytes)
    return -EINVAL;             /* the driver never sends one */

  switch (op) {
  case UBLK_IO_OP_READ:
    if (zq_pread (dev->img, buf, len, offset) == -1)
      return engine_failed ();
    return (r = copy_data (dev, buf, len, buf_pos, true)) < 0 ? r : (int) len;

  case UBLK_IO_OP_WRITE:
    if ((r = copy_data (dev, buf, len, buf_pos, false)) < 0)
      return r;
    if (zq_pwrite (dev->img, buf, len, offset, fua) == -1)
      return engine_failed ();
    return (int) len;

  case UBLK_IO_OP_FLUSH:
    return zq_flush (dev->img) == -1 ? engine_failed () : 0;

  case UBLK_IO_OP_DISCARD:
    return zq_trim (dev->img, len, offset, 0) == -1 ? engine_failed () : 0;

  case UBLK_IO_OP_WRITE_ZEROES:
    r = zq_zero (dev->img, len, offset,
                 fua | ((iod->op_flags & UBLK_IO_F_NOUNMAP) ? 0 : ZQ_MAY_TRIM));
    return r == -1 ? engine_failed () : 0;
  }

  if (!dev->zoned)
    return -EOPNOTSUPP;

  switch (op) {
  case UBLK_IO_OP_ZONE_APPEND:
    if ((r = copy_data (dev, buf, len, buf_pos, false)) < 0)
      return r;
    if (zq_zone_append (dev->img, buf, len, offset, fua, &at) == -1)
      return engine_failed ();
    *append_sector = at >> 9;
    return (int) len;

  case UBLK_IO_OP_ZONE_OPEN:
    return zq_zone_open (dev->img, zone) == -1 ? engine_failed () : 0;
  case UBLK_IO_OP_ZONE_CLOSE:
    return zq_zone_close (dev->img, zone) == -1 ? engine_failed () : 0;
  case UBLK_IO_OP_ZONE_FINISH:
    return zq_zone_finish (dev->img, zone) == -1 ? engine_failed () : 0;
  case UBLK_IO_OP_ZONE_RESET:
    return zq_zone_reset (dev->img, zone) == -1 ? engine_failed () : 0;
  case UBLK_IO_OP_ZONE_RESET_ALL:
    return reset_all (dev);

  case UBLK_IO_OP_REPORT_ZONES: {
    /* nr_sectors holds the number of zones wanted. */
    long bytes = report_zones (dev->img, zone, iod->nr_sectors, buf,
                               dev->max_io_bytes / sizeof (struct blk_zone));
    if (bytes < 0)
      return (int) bytes;
    return (r = copy_data (dev, buf, (uint64_t) bytes, buf_pos, true)) < 0
           ? r : (int) bytes;
  }
  }
  return -EOPNOTSUPP;
}
