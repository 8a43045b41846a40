/* The engine's request entry points: checks common to every image, then
 * the zone rules on zoned images (zone-io.c) or straight to the qcow2
 * layer, then FUA.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>

#include "internal.h"

int
check_writable (struct zq_image *img, const char *what)
{
  if (img->readonly) {
    zq_log_refusal (img, "%s: %s refused: the image is open read-only",
                    img->filename, what);
    errno = EPERM;
    return -1;
  }
  if (write_refused (img)) {
    /* Logged once, when the corruption was found (overlap.c). */
    zq_debug ("%s: %s refused: the image is marked corrupt",
              img->filename, what);
    errno = EIO;
    return -1;
  }
  return 0;
}

/* The bounds check every request entry point here makes first; it lives
 * beside them (it was in log.c) because only they call it.
 */
int
check_request (struct zq_image *img, const char *what,
               uint64_t count, uint64_t offset)
{
  if (offset > img->virtual_size || count > img->virtual_size - offset) {
    zq_log_refusal (img, "%s: %s at offset %" PRIu64 " length %" PRIu64
                    " is past the end of the image (%" PRIu64 " bytes)",
                    img->filename, what, offset, count, img->virtual_size);
    errno = EINVAL;
    return -1;
  }
  return 0;
}

/* Zoned images flush their write pointers too (zones_flush). */
static int
fua (struct zq_image *img, uint64_t count, uint64_t offset)
{
  return img->zones ? zq_flush (img) : flush_range (img, count, offset);
}

int
zq_pread (struct zq_image *img, void *buf, uint64_t count, uint64_t offset)
{
  if (check_request (img, "read", count, offset) == -1)
    return -1;
  return img->zones ? zone_read (img, buf, count, offset)
                    : qcow2_read (img, buf, count, offset);
}

/* A write or write zeroes (buf NULL), waiting for its turn in its zone
 * (park NULL) or parking.
 */
static int
write_request (struct zq_image *img, const void *buf, uint64_t count,
               uint64_t offset, unsigned flags, struct zq_park *park)
{
  const char *what = buf ? "write" : "write zeroes";
  int r;

  if (check_writable (img, what) == -1 ||
      check_request (img, what, count, offset) == -1)
    r = -1;
  else if (img->zones)
    r = zone_write (img, buf, count, offset, buf == NULL, flags, park);
  else
    r = buf ? qcow2_write (img, buf, count, offset)
            : qcow2_zero (img, count, offset, flags);
  if (r == 0 && buf == NULL && img->zones == NULL)
    release_if_many_pending (img);
  if (r == 0 && (flags & ZQ_FUA))
    r = fua (img, count, offset);
  if (park != NULL && r != ZQ_PARKED)
    *park = (struct zq_park) { .wake = park->wake };
  return r;
}

int
zq_pwrite (struct zq_image *img, const void *buf, uint64_t count,
           uint64_t offset, unsigned flags)
{
  return write_request (img, buf, count, offset, flags & ZQ_FUA, NULL);
}

int
zq_zone_append (struct zq_image *img, const void *buf, uint64_t count,
                uint64_t zone_start, unsigned flags, uint64_t *appended_at)
{
  int r;

  if (check_writable (img, "zone append") == -1 ||
      check_request (img, "zone append", count, zone_start) == -1)
    return -1;
  if (img->zones == NULL) {
    zq_error ("%s: zone append refused: the image is not zoned",
              img->filename);
    errno = EINVAL;
    return -1;
  }
  r = zone_append (img, buf, count, zone_start, appended_at);
  if (r == 0 && (flags & ZQ_FUA))
    r = fua (img, count, *appended_at);
  return r;
}

int
zq_zero (struct zq_image *img, uint64_t count, uint64_t offset,
         unsigned flags)
{
  return write_request (img, NULL, count, offset, flags, NULL);
}

int
zq_pwrite_parked (struct zq_image *img, const void *buf, uint64_t count,
                  uint64_t offset, unsigned flags, struct zq_park *park)
{
  return write_request (img, buf, count, offset, flags & ZQ_FUA, park);
}

int
zq_zero_parked (struct zq_image *img, uint64_t count, uint64_t offset,
                unsigned flags, struct zq_park *park)
{
  return write_request (img, NULL, count, offset, flags, park);
}

int
zq_trim (struct zq_image *img, uint64_t count, uint64_t offset,
         unsigned flags)
{
  int r;

  if (check_writable (img, "trim") == -1 ||
      check_request (img, "trim", count, offset) == -1)
    return -1;
  r = img->zones ? zone_trim (img, count, offset)
                 : qcow2_trim (img, count, offset);
  if (r == 0 && img->zones == NULL)
    release_if_many_pending (img);
  if (r == 0 && (flags & ZQ_FUA))
    r = fua (img, count, offset);
  return r;
}

int
zq_flush (struct zq_image *img)
{
  if (img->readonly)
    return 0;
  if (img->zones)
    return zones_flush (img);
  return flush_image (img);
}

/* zq_block_status is zq_block_status_depth with the depth left out. */
struct flags_only {
  zq_extent_fn fn;
  void *opaque;
};

static int
pass_flags (void *opaque, uint64_t offset, uint64_t length, uint32_t flags,
            uint32_t depth)
{
  const struct flags_only *f = opaque;

  return f->fn (f->opaque, offset, length, flags);
}

int
zq_block_status (struct zq_image *img, uint64_t count, uint64_t offset,
                 zq_extent_fn fn, void *opaque)
{
  struct flags_only f = { .fn = fn, .opaque = opaque };

  return zq_block_status_depth (img, count, offset, ZQ_STATUS_FLAGS,
                                pass_flags, &f);
}

int
zq_block_status_depth (struct zq_image *img, uint64_t count, uint64_t offset,
                       unsigned split, zq_extent_depth_fn fn, void *opaque)
{
  if (check_request (img, "block status", count, offset) == -1)
    return -1;
  /* Zoned images report what lies past each write pointer by rule. */
  return block_status_walk (img,
                            img->zones ? zone_block_status
                                       : qcow2_block_status,
                            count, offset, split, fn, opaque);
}
