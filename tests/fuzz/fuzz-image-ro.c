/* libFuzzer harness: an input image opened read-only.
 *
 * The input is the whole qcow2 file.  zq_info and zq_check look at it
 * offline; then the engine opens it read-only (no backing file; an
 * external data file, if the header asks for one, is an empty file of the
 * harness's) and reads, asks block status and reports zones across the
 * disk.  Bad images must be refused or served without a crash, and the
 * file's bytes must never change: read-only means read-only.
 */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"
#include "zqcow2.h"

/* Enough to cover several clusters of the largest size per read, little
 * enough to keep an input fast.
 */
#define READ_BYTES (64 * 1024)
#define MAX_EXTENTS 4096
#define SPOTS 8

static uint8_t read_buf[READ_BYTES];

struct extent_walk {
  uint64_t next;                /* where the next extent must start */
  unsigned count;
};

static int
count_extent (void *opaque, uint64_t offset, uint64_t length, uint32_t flags)
{
  struct extent_walk *walk = opaque;

  /* The callback's contract: in order, contiguous, not empty. */
  if (offset != walk->next || length == 0 ||
      (flags & ~(ZQ_EXTENT_HOLE | ZQ_EXTENT_ZERO)) != 0)
    abort ();
  walk->next = offset + length;
  return ++walk->count < MAX_EXTENTS ? 0 : -1;
}

/* Where the input's last bytes point, unaligned: in most images those
 * are guest data, so that mutating them moves the reads and leaves the
 * image valid.  Two bytes per read: the offset, and the length.
 */
#define TAIL_READS 4

static void
read_from_tail (struct zq_image *img, const uint8_t *data, size_t size)
{
  uint64_t disk = zq_virtual_size (img), offset, count;
  struct extent_walk walk;
  const uint8_t *tail;
  unsigned i;

  if (size < 2 * TAIL_READS || disk == 0)
    return;
  tail = data + size - 2 * TAIL_READS;
  for (i = 0; i < TAIL_READS; i++) {
    offset = disk / 256 * tail[2 * i] + tail[2 * i + 1];
    if (offset >= disk)
      offset = disk - 1;
    count = (tail[2 * i + 1] + 1) * UINT64_C (200);
    if (count > disk - offset)
      count = disk - offset;
    (void) zq_pread (img, read_buf, count, offset);
    walk = (struct extent_walk) { .next = offset };
    (void) zq_block_status (img, count, offset, count_extent, &walk);
  }
}

static void
look_at (struct zq_image *img)
{
  uint64_t size = zq_virtual_size (img), offset, count;
  struct zq_zone_geometry geometry;
  struct zq_zone zones[16];
  struct extent_walk walk;
  unsigned i;
  int n;

  (void) zq_description (img);
  (void) zq_backing_filename (img);
  for (i = 0; i < SPOTS && size > 0; i++) {
    /* Spread over the disk, the last one reaching its very end. */
    offset = i == SPOTS - 1 ? (size > READ_BYTES ? size - READ_BYTES : 0)
                            : size / SPOTS * i & ~UINT64_C (511);
    count = size - offset < READ_BYTES ? size - offset : READ_BYTES;
    (void) zq_pread (img, read_buf, count, offset);
    walk = (struct extent_walk) { .next = offset };
    if (zq_block_status (img, size - offset, offset, count_extent,
                         &walk) == 0 && walk.count == 0)
      abort ();                 /* success must report something */
  }
  if (zq_is_zoned (img) && zq_zone_geometry (img, &geometry) == 0) {
    n = zq_zone_report (img, 0, 16, zones);
    if (n > 16)
      abort ();
    if (geometry.nr_zones > 16)
      (void) zq_zone_report (img, geometry.nr_zones - 16, 16, zones);
    (void) zq_zone_report (img, geometry.nr_zones, 1, zones);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static char image[4096], data_file[4096];
  struct zq_open_options options = { .readonly = true, .no_backing = true };
  struct zq_check_result check;
  struct zq_info info;
  struct zq_image *img;

  if (image[0] == '\0') {
    fuzz_quiet_engine ();
    fuzz_path (image, "ro.qcow2");
    fuzz_path (data_file, "ro-data.raw");
    fuzz_write_file (data_file, NULL, 0);
  }
  fuzz_write_file (image, data, size);

  (void) zq_info (image, &info);
  (void) zq_check (image, &check);
  fuzz_assert_file_is (image, data, size, "zq_info or zq_check");

  options.filename = image;
  if (fuzz_wants_data_file (data, size))
    options.data_file = data_file;
  img = zq_open (&options);
  if (img != NULL) {
    look_at (img);
    read_from_tail (img, data, size);
    if (zq_close (img) == -1)
      abort ();                 /* nothing to flush on a read-only image */
  }
  fuzz_assert_file_is (image, data, size, "a read-only open");
  fuzz_assert_file_is (data_file, NULL, 0, "a read-only open");
  return 0;
}
