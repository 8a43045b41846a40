/* NBD_CMD_BLOCK_STATUS: one NBD_REPLY_TYPE_BLOCK_STATUS chunk per selected
 * metadata context, in the order of meta-context.h: base:allocation,
 * qemu:allocation-depth and qemu:joint-allocation from the engine's block
 * status (zq_block_status_depth, split where the context's answer can
 * change), qemu:zone-state from its zone report.
 *
 * Descriptors are built in the request's buffer, one context at a time.
 * A reply stops after MAX_DESCRIPTORS; the protocol lets a server
 * describe less than the whole range, and the client asks again from
 * where the reply ended.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>

#include "connection.h"
#include "meta-context.h"
#include "nbd-protocol.h"
#include "server.h"
#include "wire.h"
#include "zone-state.h"

#define MAX_DESCRIPTORS 16384
#define ZONES_PER_REPORT 64     /* zones fetched from the engine at once */

struct descriptors {
  uint8_t *buf;                 /* 8 bytes each: length, status */
  uint32_t count;
  uint32_t max;                 /* 1 under REQ_ONE */
};

/* Adds one descriptor.  Returns -1 once the list is full, which stops
 * the walk that feeds it; an extent offered after that is dropped, so a
 * walk that does not stop at once cannot overrun the list.
 */
static int
add_descriptor (struct descriptors *d, uint32_t length, uint32_t status)
{
  if (d->count >= d->max)
    return -1;
  put_be32 (d->buf + 8 * d->count, length);
  put_be32 (d->buf + 8 * d->count + 4, status);
  d->count++;
  return d->count < d->max ? 0 : -1;
}

/* base:allocation's HOLE and ZERO bits. */
static uint32_t
allocation_bits (uint32_t flags)
{
  uint32_t status = 0;

  if (flags & ZQ_EXTENT_HOLE)
    status |= NBD_STATE_HOLE;
  if (flags & ZQ_EXTENT_ZERO)
    status |= NBD_STATE_ZERO;
  return status;
}

/* The engine's extents lie within a request, so below 4 GiB. */
static int
add_allocation (void *opaque, uint64_t offset, uint64_t length,
                uint32_t flags, uint32_t depth)
{
  return add_descriptor (opaque, (uint32_t) length, allocation_bits (flags));
}

static int
add_depth (void *opaque, uint64_t offset, uint64_t length, uint32_t flags,
           uint32_t depth)
{
  return add_descriptor (opaque, (uint32_t) length, depth);
}

/* Depths 2 and 3 are both BACKING: the engine splits between them, the
 * encoding joins them again.
 */
static int
add_joint (void *opaque, uint64_t offset, uint64_t length, uint32_t flags,
           uint32_t depth)
{
  struct descriptors *d = opaque;
  uint32_t status = allocation_bits (flags);

  if (depth == 1)
    status |= JOINT_ALLOCATION_LOCAL;
  else if (depth >= 2)
    status |= JOINT_ALLOCATION_BACKING;
  if (d->count > 0) {
    uint8_t *last = d->buf + 8 * (d->count - 1);

    if (get_be32 (last + 4) == status &&
        get_be32 (last) <= UINT32_MAX - length) {
      put_be32 (last, get_be32 (last) + (uint32_t) length);
      return 0;
    }
  }
  return add_descriptor (d, (uint32_t) length, status);
}

static int
add_zone_state (void *opaque, uint32_t length, uint32_t status)
{
  return add_descriptor (opaque, length, status);
}

/* The contexts answered from the engine's block status: how each is split
 * and encoded.
 */
static const struct {
  unsigned split;
  zq_extent_depth_fn add;
} allocation_contexts[NR_META_CONTEXTS] = {
  [CTX_BASE_ALLOCATION] = { ZQ_STATUS_FLAGS, add_allocation },
  [CTX_ALLOCATION_DEPTH] = { ZQ_STATUS_DEPTH, add_depth },
  [CTX_JOINT_ALLOCATION] = { ZQ_STATUS_FLAGS | ZQ_STATUS_DEPTH, add_joint },
};

static int
collect_allocation (const struct request *req, enum meta_context c,
                    struct descriptors *d)
{
  return zq_block_status_depth (export.img, req->count, req->offset,
                                allocation_contexts[c].split,
                                allocation_contexts[c].add, d);
}

/* qemu:zone-state: zones come from the engine in batches, each encoded
 * by zone-state.c and clipped to the request.
 */
static int
collect_zone_state (const struct request *req, struct descriptors *d)
{
  struct zq_zone zones[ZONES_PER_REPORT];
  uint64_t end = req->offset + req->count;
  uint32_t zone = req->offset >> export.zone_shift;
  int nr, i;

  while (d->count < d->max) {
    nr = zq_zone_report (export.img, zone, ZONES_PER_REPORT, zones);
    if (nr == -1)
      return -1;
    for (i = 0; i < nr; i++) {
      if (zones[i].start >= end)
        return 0;
      if (zone_state_extents (&zones[i], export.zone_shift, req->offset,
                              end, add_zone_state, d) == -1)
        return 0;               /* the list is full */
    }
    if (nr < ZONES_PER_REPORT)
      return 0;                 /* the last zone */
    zone += nr;
  }
  return 0;
}

static int
no_extent (const struct request *req, const char *context)
{
  server_error ("%s: %s: the engine described no extent at offset %"
                PRIu64, zq_filename (export.img), context, req->offset);
  errno = EIO;
  return -1;
}

/* Sends one context's chunk.  The last chunk of the reply is DONE. */
static int
send_context (struct connection *conn, const struct request *req,
              uint32_t context_id, const struct descriptors *d, bool last)
{
  uint8_t head[4];

  put_be32 (head, context_id);
  return reply_chunk (conn, req, last ? NBD_REPLY_FLAG_DONE : 0,
                      NBD_REPLY_TYPE_BLOCK_STATUS, head, sizeof head,
                      d->buf, 8 * (size_t) d->count);
}

int
block_status (struct connection *conn, struct request *req)
{
  bool req_one = (req->flags & NBD_CMD_FLAG_REQ_ONE) != 0;
  unsigned selected = conn->meta_contexts;
  struct descriptors d;
  int c;

  if (request_buffer (req, 8 * (size_t) MAX_DESCRIPTORS) == -1)
    return -1;
  d.buf = req->buf;
  d.max = req_one ? 1 : MAX_DESCRIPTORS;

  for (c = 0; c < NR_META_CONTEXTS; c++) {
    int r;

    if (!(selected & CTX_BIT (c)))
      continue;
    selected &= ~CTX_BIT (c);
    d.count = 0;
    r = c == CTX_ZONE_STATE ? collect_zone_state (req, &d)
                            : collect_allocation (req, c, &d);
    if (r == -1)
      return -1;
    if (d.count == 0)           /* the engine promises at least one */
      return no_extent (req, meta_context_name (c));
    send_context (conn, req, meta_context_id (c), &d, selected == 0);
  }
  return 0;
}
