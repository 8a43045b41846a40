/* zqcow2-img zones URI: the zone report of an NBD export, rebuilt from
 * the qemu:zone-state metadata context as nbd-zones.md says ("Rebuilding
 * a zone report from it"), and printed as the report of an image file.
 *
 * The extents of one zone may come in any number of replies: a server
 * may answer with one extent (REQ_ONE, or a short reply), a zone of
 * 4 GiB or more is several extents, and an export larger than one
 * request takes several.  The rebuilder therefore keeps the zone in
 * progress across replies and prints it once its extents cover it.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "zqcow2.h"
#include "zone-state.h"
#include "img-util.h"
#include "img-zones.h"

#define CONTEXT_ZONE_STATE "qemu:zone-state"

/* The most one BLOCK_STATUS asks about: its length is 32 bits. */
#define REQUEST_BYTES (UINT64_C (1) << 31)

/* The bits every extent of a zone shares. */
#define ZONE_BITS (~(ZONE_STATE_WRITTEN | ZONE_STATE_BEYOND_CAPACITY))

struct rebuild {
  const char *uri;
  uint64_t size;                /* of the export */
  uint64_t pos;                 /* where the next extent must start */
  unsigned shift;               /* log2 (zone size); 0 until known */
  bool failed;                  /* an error was reported */
  bool done;                    /* --count zones printed */
  bool json;
  bool learned;                 /* this reply told the zone size */
  uint64_t extents_seen;        /* in this reply */
  uint32_t zones_left;
  uint32_t printed;
  /* The zone in progress, when `have`. */
  bool have;
  struct zq_zone zone;
  uint32_t zone_bits;
  uint64_t covered, written, beyond;
  int part;                     /* 0 written, 1 not yet, 2 beyond capacity */
};

static int
bad_map (struct rebuild *r, const char *fs, uint64_t offset)
{
  error ("%s: the server's %s map is not a zone report: %s at offset %"
         PRIu64, r->uri, CONTEXT_ZONE_STATE, fs, offset);
  r->failed = true;
  return -1;
}

static void
print_zone (struct rebuild *r)
{
  struct zq_zone *z = &r->zone;

  z->capacity = z->length - r->beyond;
  if (z->type == ZQ_ZONE_TYPE_CONVENTIONAL)
    z->write_pointer = z->start;
  else if (z->cond == ZQ_ZONE_COND_FULL)
    z->write_pointer = z->start + z->length;
  else
    z->write_pointer = z->start + r->written;
  zones_print_zone (z->start >> r->shift, z, r->json, r->printed == 0);
  r->printed++;
  r->have = false;
  if (--r->zones_left == 0)
    r->done = true;
}

/* Starts a zone at the extent at `offset`. */
static int
begin_zone (struct rebuild *r, uint64_t offset, uint32_t status)
{
  uint64_t start = offset >> r->shift << r->shift;
  uint64_t zone_size = UINT64_C (1) << r->shift;
  unsigned type = (status >> ZONE_STATE_TYPE_SHIFT) & 0xf;

  if (offset != start)
    return bad_map (r, "a zone's first extent does not start the zone",
                    offset);
  if (type != ZQ_ZONE_TYPE_CONVENTIONAL && type != ZQ_ZONE_TYPE_SEQWRITE_REQ)
    return bad_map (r, "no zone type", offset);
  if (((status & ZONE_STATE_ZONE_ODD) != 0) != ((start >> r->shift) & 1))
    return bad_map (r, "ZONE_ODD does not match the zone", offset);
  r->have = true;
  r->zone.start = start;
  r->zone.length = r->size - start < zone_size ? r->size - start : zone_size;
  r->zone.type = type;
  r->zone.cond = status & ZONE_STATE_COND_MASK;
  r->zone_bits = status & ZONE_BITS;
  r->covered = r->written = r->beyond = 0;
  r->part = 0;
  return 0;
}

/* Which part of its zone an extent is: the written part, the part not
 * yet written, the part beyond the capacity, in that order.  -1 for
 * WRITTEN and BEYOND_CAPACITY together.
 */
static int
zone_part (uint32_t status)
{
  bool written = status & ZONE_STATE_WRITTEN;
  bool beyond = status & ZONE_STATE_BEYOND_CAPACITY;

  if (written && beyond)
    return -1;
  return written ? 0 : beyond ? 2 : 1;
}

/* One extent, in order. */
static int
add_extent (struct rebuild *r, uint64_t offset, uint64_t length,
            uint32_t status)
{
  unsigned shift = (status >> ZONE_STATE_ZONE_SHIFT_SHIFT) & 0x3f;

  if (length == 0)
    return bad_map (r, "an empty extent", offset);
  if (status == 0)
    return bad_map (r, "status 0 (nothing known)", offset);
  if (shift != r->shift)
    return bad_map (r, "the zone size changes", offset);
  if (!r->have && begin_zone (r, offset, status) == -1)
    return -1;
  if ((status & ZONE_BITS) != r->zone_bits)
    return bad_map (r, "the extents of one zone disagree", offset);
  if (length > r->zone.length - r->covered)
    return bad_map (r, "an extent crosses the end of its zone", offset);
  if (zone_part (status) == -1)
    return bad_map (r, "WRITTEN and BEYOND_CAPACITY together", offset);
  if (zone_part (status) < r->part)
    return bad_map (r, "WRITTEN and BEYOND_CAPACITY out of order", offset);
  r->part = zone_part (status);
  r->covered += length;
  if (status & ZONE_STATE_WRITTEN)
    r->written += length;
  if (status & ZONE_STATE_BEYOND_CAPACITY)
    r->beyond += length;
  r->pos = offset + length;
  if (r->covered == r->zone.length)
    print_zone (r);
  return 0;
}

static int
extents (void *opaque, const char *context, uint64_t offset,
         uint32_t *entries, size_t nr_entries, int *error)
{
  struct rebuild *r = opaque;
  size_t i;

  if (r->failed || r->done || strcmp (context, CONTEXT_ZONE_STATE) != 0)
    return 0;
  if (offset != r->pos) {
    bad_map (r, "the reply does not start where it was asked", offset);
    return 0;
  }
  for (i = 0; i + 1 < nr_entries && !r->done; i += 2) {
    if (r->shift == 0) {
      /* The first extent tells the zone size; the report starts at the
       * zone that holds --offset, so start again from there.
       */
      if (entries[i + 1] == 0) {
        bad_map (r, "status 0 (nothing known)", offset);
        return 0;
      }
      r->shift = (entries[i + 1] >> ZONE_STATE_ZONE_SHIFT_SHIFT) & 0x3f;
      if (r->shift < 9) {
        bad_map (r, "a zone size below 512 bytes", offset);
        return 0;
      }
      r->pos = r->pos >> r->shift << r->shift;
      r->learned = true;
      return 0;
    }
    r->extents_seen++;
    if (add_extent (r, offset, entries[i], entries[i + 1]) == -1)
      return 0;
    offset += entries[i];
  }
  return 0;
}

bool
is_nbd_uri (const char *name)
{
  return strncmp (name, "nbd", 3) == 0 && strstr (name, "://") != NULL;
}

int
zones_over_nbd (const char *uri, uint64_t offset, uint32_t count, bool json)
{
  struct rebuild r = { .uri = uri, .pos = offset, .json = json,
                       .zones_left = count };
  /* For tests: ask for one extent per reply, as a server may answer. */
  uint32_t flags = getenv ("ZQCOW2_IMG_REQ_ONE") ? LIBNBD_CMD_FLAG_REQ_ONE : 0;
  struct nbd_handle *nbd;
  int64_t size;
  int status = EXIT_FAILURE;

  nbd = nbd_create ();
  if (nbd == NULL) {
    error ("%s: %s", uri, nbd_get_error ());
    return EXIT_FAILURE;
  }
  if (nbd_add_meta_context (nbd, CONTEXT_ZONE_STATE) == -1 ||
      nbd_connect_uri (nbd, uri) == -1) {
    error ("%s: %s", uri, nbd_get_error ());
    goto out;
  }
  if (nbd_can_meta_context (nbd, CONTEXT_ZONE_STATE) != 1) {
    error ("%s: this export publishes no zone information; serve it with "
           "zqcow2-nbd", uri);
    goto out;
  }
  size = nbd_get_size (nbd);
  if (size == -1) {
    error ("%s: %s", uri, nbd_get_error ());
    goto out;
  }
  r.size = size;
  if (offset >= r.size) {
    error ("%s: --offset %" PRIu64 " is beyond the end of the device (%"
           PRIu64 " bytes)", uri, offset, r.size);
    goto out;
  }

  zones_print_begin (json);
  while (!r.done && !r.failed && r.pos < r.size) {
    uint64_t n = r.size - r.pos < REQUEST_BYTES ? r.size - r.pos
                                                : REQUEST_BYTES;

    r.learned = false;
    r.extents_seen = 0;
    if (nbd_block_status (nbd, n, r.pos,
                          (nbd_extent_callback) { .callback = extents,
                                                  .user_data = &r },
                          flags) == -1) {
      error ("%s: block status at offset %" PRIu64 ": %s", uri, r.pos,
             nbd_get_error ());
      r.failed = true;
    }
    else if (!r.failed && !r.learned && r.extents_seen == 0)
      bad_map (&r, "the reply describes nothing", r.pos);
  }
  if (!r.failed && r.have)
    bad_map (&r, "the export ends inside a zone", r.pos);
  zones_print_end (json);
  if (!r.failed)
    status = EXIT_SUCCESS;
  nbd_shutdown (nbd, 0);
 out:
  nbd_close (nbd);
  return status;
}
