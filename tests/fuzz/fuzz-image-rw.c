/* libFuzzer harness: an input image opened read-write.
 *
 * The input is the whole qcow2 file, copied to a scratch file (never the
 * input itself).  The engine opens the copy read-write and writes, trims,
 * zeroes and flushes across the disk (at write pointers too, on a zoned
 * image, and resets and finishes zones); then it closes and zq_check
 * looks at the result.  Nothing may crash, and two outcomes are findings:
 *  - a write the engine acknowledged does not read back;
 *  - an image that zq_check found clean before is corrupt after: bad
 *    input may be refused, but a good image must stay good.
 * The first is checked on every image: since writes are checked against
 * the metadata (lib/overlap.c), a corrupt refcount can no longer make a
 * write land on the header; an acknowledged write reads back, or the
 * write fails.  FUZZ_RW_STRICT=0 checks it on clean images only, as
 * before the overlap protection.
 */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz-common.h"
#include "zqcow2.h"

#define IO_BYTES (16 * 1024)
/* More than the requests of exercise() can allocate, clusters of 2 MiB
 * and their tables included.
 */
#define MAX_GROWTH (UINT64_C (256) << 20)
#define SPOTS 5

static uint8_t pattern[IO_BYTES], readback[IO_BYTES];
static bool verify_writes;      /* this input's writes must read back */
static bool strict;             /* unless FUZZ_RW_STRICT=0 */

static int
is_clean (const struct zq_check_result *r)
{
  return r->corruptions == 0 && r->wp_errors == 0 && r->check_errors == 0;
}

/* A write that succeeded must read back, unless a later request of ours
 * changed those bytes (we check at once, before any).
 */
static void
write_and_verify (struct zq_image *img, uint64_t count, uint64_t offset,
                  unsigned flags)
{
  if (zq_pwrite (img, pattern, count, offset, flags) == 0 &&
      verify_writes && zq_pread (img, readback, count, offset) == 0 &&
      memcmp (pattern, readback, count) != 0) {
    fprintf (stderr, "fuzz: %" PRIu64 " bytes written at %" PRIu64
             " read back differently\n", count, offset);
    abort ();
  }
}

static void
exercise_zones (struct zq_image *img)
{
  struct zq_zone_geometry geometry;
  struct zq_zone zones[4];
  int n, i;

  if (zq_zone_geometry (img, &geometry) == -1)
    return;
  /* The first zones past the conventional ones: append at each write
   * pointer, then finish one and reset another.
   */
  n = zq_zone_report (img, geometry.conventional_zones, 4, zones);
  for (i = 0; i < n; i++) {
    if (zones[i].type != ZQ_ZONE_TYPE_SEQWRITE_REQ)
      continue;
    write_and_verify (img, 4096, zones[i].write_pointer, 0);
    write_and_verify (img, 512, zones[i].write_pointer + 4096, ZQ_FUA);
  }
  if (n >= 1)
    (void) zq_zone_finish (img, geometry.conventional_zones);
  if (n >= 2) {
    (void) zq_zone_reset (img, geometry.conventional_zones + 1);
    (void) zq_zone_open (img, geometry.conventional_zones + 1);
    (void) zq_zone_close (img, geometry.conventional_zones + 1);
  }
}

/* More requests, chosen by the input's last bytes: in most images those
 * are guest data, so that mutating them changes the requests and leaves
 * the image valid.  Byte i picks the kind and the length of request i,
 * byte TAIL_REQUESTS + i where in [0, disk) it goes.
 */
#define TAIL_REQUESTS 8

static void
exercise_from_tail (struct zq_image *img, const uint8_t *data, size_t size,
                    uint64_t disk)
{
  const uint8_t *tail;
  unsigned i;

  if (size < 2 * TAIL_REQUESTS || disk < IO_BYTES)
    return;
  tail = data + size - 2 * TAIL_REQUESTS;
  for (i = 0; i < TAIL_REQUESTS; i++) {
    uint64_t count = ((tail[i] >> 3) + 1) * UINT64_C (512); /* <= IO_BYTES */
    uint64_t offset = (disk - IO_BYTES) / 255 * tail[TAIL_REQUESTS + i]
                      & ~UINT64_C (511);

    switch (tail[i] & 7) {
    case 0: write_and_verify (img, count, offset, 0); break;
    case 1: write_and_verify (img, count - 7, offset + 3, 0); break;
    case 2: (void) zq_trim (img, count, offset, 0); break;
    case 3: (void) zq_zero (img, count, offset, ZQ_MAY_TRIM); break;
    case 4: (void) zq_zero (img, count, offset, 0); break;
    case 5: (void) zq_zero (img, count, offset, ZQ_FAST_ZERO); break;
    case 6: write_and_verify (img, count, offset, ZQ_FUA); break;
    case 7: (void) zq_flush (img); break;
    }
  }
}

/* Spots across the disk, or across the conventional zones of a zoned one
 * (elsewhere a write must be at the write pointer), then the requests
 * the input's tail asks for.
 */
static void
exercise (struct zq_image *img, const uint8_t *data, size_t data_size)
{
  uint64_t size = zq_virtual_size (img), offset;
  struct zq_zone_geometry geometry;
  uint8_t buf[4096];
  unsigned i;

  if (zq_is_zoned (img) && zq_zone_geometry (img, &geometry) == 0 &&
      geometry.conventional_zones * geometry.zone_size < size)
    size = geometry.conventional_zones * geometry.zone_size;
  for (i = 0; i < SPOTS && size >= IO_BYTES; i++) {
    offset = (size - IO_BYTES) / (SPOTS - 1) * i & ~UINT64_C (511);
    write_and_verify (img, IO_BYTES, offset, i == 2 ? ZQ_FUA : 0);
    /* Unaligned: a partial cluster, subclusters, copy on write. */
    write_and_verify (img, 100, offset + 1000, 0);
    (void) zq_trim (img, 4096, offset, 0);
    (void) zq_zero (img, 8192, offset + 4096, i & 1 ? ZQ_MAY_TRIM : 0);
    (void) zq_zero (img, 4096, offset, ZQ_FAST_ZERO);
    (void) zq_pread (img, buf, sizeof buf, offset);
  }
  exercise_from_tail (img, data, data_size, size);
  (void) zq_flush (img);
  if (zq_is_zoned (img))
    exercise_zones (img);
  (void) zq_flush (img);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static char input[4096], image[4096], data_file[4096];
  struct zq_open_options options = { .no_backing = true };
  struct zq_check_result before, after;
  struct zq_image *img;
  struct stat st;
  int was_clean;

  if (image[0] == '\0') {
    unsigned i;

    fuzz_quiet_engine ();
    strict = getenv ("FUZZ_RW_STRICT") == NULL ||
             strcmp (getenv ("FUZZ_RW_STRICT"), "0") != 0;
    fuzz_path (input, "rw-input.qcow2");
    fuzz_path (image, "rw.qcow2");
    fuzz_path (data_file, "rw-data.raw");
    for (i = 0; i < IO_BYTES; i++)
      pattern[i] = i * 7 + 1;
  }
  /* The pristine input, to show the check did not write to it. */
  fuzz_write_file (input, data, size);
  fuzz_write_file (image, data, size);
  fuzz_write_file (data_file, NULL, 0);

  was_clean = zq_check (input, &before) == 0 && is_clean (&before);
  fuzz_assert_file_is (input, data, size, "zq_check");
  verify_writes = was_clean || strict;

  options.filename = image;
  if (fuzz_wants_data_file (data, size))
    options.data_file = data_file;
  img = zq_open (&options);
  if (img == NULL)
    return 0;
  if (!zq_is_readonly (img))
    exercise (img, data, size);
  (void) zq_close (img);

  /* A corrupt entry can still make the engine extend the file far out
   * (issue 10); zq_check's time grows with the file, so such an image is
   * not checked.  A clean one must not grow like that.
   */
  if (stat (image, &st) == 0 && (uint64_t) st.st_size > size + MAX_GROWTH) {
    if (was_clean) {
      fprintf (stderr, "fuzz: a clean image of %zu bytes grew to %" PRIu64
               "\n", size, (uint64_t) st.st_size);
      abort ();
    }
    return 0;
  }
  if (zq_check (image, &after) == 0 && was_clean && !is_clean (&after)) {
    fprintf (stderr, "fuzz: a clean image became corrupt: %" PRIu64
             " corruptions, %" PRIu64 " write-pointer errors, %" PRIu64
             " check errors\n", after.corruptions, after.wp_errors,
             after.check_errors);
    abort ();
  }
  return 0;
}
