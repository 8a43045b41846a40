/* The parts of zqcow2-ublk that need no kernel: the REPORT_ZONES answer
 * (ublk/report.c) against the engine's own report, and the device
 * parameters (ublk/params.c) against the image's geometry.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report.h"
#include "ublk.h"
#include "unit.h"

#define ZONE_SIZE (1024u * 1024)
#define NR_ZONES 10u

/* Never called: params.c and report.c log nothing. */
bool verbose;
void ublk_error (const char *fs, ...) { (void) fs; }
void ublk_debug (const char *fs, ...) { (void) fs; }

static struct zq_image *
new_image (char *path, bool zoned)
{
  struct zq_create_options zoned_options = {
    .size = NR_ZONES * (uint64_t) ZONE_SIZE, .zoned = true,
    .zone_size = ZONE_SIZE, .zone_capacity = ZONE_SIZE / 2,
    .conventional_zones = 2, .max_open_zones = 3, .max_active_zones = 5,
    .max_append_bytes = 128 * 1024,
  };
  struct zq_create_options plain_options = {
    .size = NR_ZONES * (uint64_t) ZONE_SIZE,
  };
  struct zq_create_options co = zoned ? zoned_options : plain_options;
  struct zq_open_options oo = { 0 };
  struct zq_image *img;
  int fd = mkstemp (path);

  CHECK (fd >= 0);
  close (fd);
  co.filename = oo.filename = path;
  CHECK (zq_create (&co) == 0);
  img = zq_open (&oo);
  CHECK (img != NULL);
  return img;
}

/* Each entry in sectors as the engine reports the zone in bytes. */
static void
test_report (struct zq_image *img)
{
  static uint8_t data[8192];
  struct blk_zone out[NR_ZONES + 4];
  struct zq_zone z;
  unsigned i;
  long bytes;

  memset (data, 0xab, sizeof data);
  CHECK (zq_pwrite (img, data, sizeof data, 3 * (uint64_t) ZONE_SIZE, 0)
         == 0);
  CHECK (zq_zone_finish (img, 4) == 0);

  memset (out, 0x77, sizeof out);
  bytes = report_zones (img, 0, NR_ZONES, out, NR_ZONES + 4);
  CHECK (bytes == (long) (NR_ZONES * sizeof (struct blk_zone)));
  for (i = 0; i < NR_ZONES; i++) {
    CHECK (zq_zone_report (img, i, 1, &z) == 1);
    CHECK (out[i].start == z.start / 512);
    CHECK (out[i].len == ZONE_SIZE / 512);
    CHECK (out[i].capacity == z.capacity / 512);
    CHECK (out[i].wp == z.write_pointer / 512);
    CHECK (out[i].type == z.type);
    CHECK (out[i].cond == z.cond);
    CHECK (out[i].non_seq == 0 && out[i].reset == 0);
  }
  CHECK (out[0].type == BLK_ZONE_TYPE_CONVENTIONAL);
  CHECK (out[3].cond == BLK_ZONE_COND_IMP_OPEN);
  CHECK (out[3].wp == (3 * (uint64_t) ZONE_SIZE + sizeof data) / 512);
  CHECK (out[4].cond == BLK_ZONE_COND_FULL);
  CHECK (out[5].cond == BLK_ZONE_COND_EMPTY);
  CHECK (out[5].capacity == ZONE_SIZE / 2 / 512);

  /* From zone 8, 4 wanted, 2 exist: a zeroed entry ends the list, and
   * the length covers all 4 (the driver's buffer).
   */
  memset (out, 0x77, sizeof out);
  bytes = report_zones (img, 8, 4, out, NR_ZONES + 4);
  CHECK (bytes == (long) (4 * sizeof (struct blk_zone)));
  CHECK (out[0].start == 8 * (uint64_t) ZONE_SIZE / 512);
  CHECK (out[1].start == 9 * (uint64_t) ZONE_SIZE / 512);
  CHECK (out[2].len == 0 && out[2].start == 0 && out[2].cond == 0);

  /* More than the buffer holds is refused. */
  CHECK (report_zones (img, 0, 5, out, 4) < 0);
}

static void
test_params (struct zq_image *img, bool zoned)
{
  struct device dev = {
    .img = img, .size = zq_virtual_size (img), .zoned = zoned,
    .max_io_bytes = IO_BUF_BYTES,
  };
  struct zq_ublk_params p;

  zq_block_limits (img, &dev.limits);
  if (zoned)
    CHECK (zq_zone_geometry (img, &dev.geometry) == 0);
  device_params (&dev, &p);
  CHECK (p.len == sizeof p);
  CHECK (p.basic.dev_sectors == NR_ZONES * (uint64_t) ZONE_SIZE / 512);
  CHECK (p.basic.logical_bs_shift == 9);
  CHECK (p.basic.max_sectors == IO_BUF_BYTES / 512);
  CHECK (p.basic.io_opt_shift == 16);   /* 64 KiB clusters */
  CHECK (p.basic.attrs & UBLK_ATTR_VOLATILE_CACHE);
  CHECK (!(p.basic.attrs & UBLK_ATTR_READ_ONLY));
  if (zoned) {
    CHECK (p.types == (UBLK_PARAM_TYPE_BASIC | UBLK_PARAM_TYPE_ZONED));
    CHECK (p.basic.chunk_sectors == ZONE_SIZE / 512);
    CHECK (p.zoned.max_open_zones == 3);
    CHECK (p.zoned.max_active_zones == 5);
    CHECK (p.zoned.max_zone_append_sectors == 128 * 1024 / 512);
  }
  else {
    CHECK (p.types == (UBLK_PARAM_TYPE_BASIC | UBLK_PARAM_TYPE_DISCARD));
    CHECK (p.basic.chunk_sectors == 0);
    CHECK (p.discard.discard_granularity == 64 * 1024);
    CHECK (p.discard.max_write_zeroes_sectors > 0);
  }
  dev.readonly = true;
  device_params (&dev, &p);
  CHECK (p.basic.attrs & UBLK_ATTR_READ_ONLY);
  CHECK (!(p.types & UBLK_PARAM_TYPE_DISCARD));
}

int
main (void)
{
  char zoned_path[] = "/tmp/unit-ublk-XXXXXX";
  char plain_path[] = "/tmp/unit-ublk-XXXXXX";
  struct zq_image *img;

  if ((img = new_image (zoned_path, true)) != NULL) {
    test_report (img);
    test_params (img, true);
    CHECK (zq_close (img) == 0);
  }
  unlink (zoned_path);
  if ((img = new_image (plain_path, false)) != NULL) {
    test_params (img, false);
    CHECK (zq_close (img) == 0);
  }
  unlink (plain_path);
  UNIT_EXIT ();
}
