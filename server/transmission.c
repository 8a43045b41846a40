/* The transmission phase: the reader loop of a connection, and the
 * execution of each request on a worker thread.
 *
 * The reader checks what it can without the engine (magic, command,
 * flags, sizes, bounds) and refuses bad requests itself; everything else
 * is the engine's to judge.  The engine logs each request it refuses, so
 * the server logs only its own refusals.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>

#include "connection.h"
#include "nbd-protocol.h"
#include "server.h"
#include "wire.h"

static const char *
command_name (uint16_t type)
{
  switch (type) {
  case NBD_CMD_READ: return "read";
  case NBD_CMD_WRITE: return "write";
  case NBD_CMD_DISC: return "disconnect";
  case NBD_CMD_FLUSH: return "flush";
  case NBD_CMD_TRIM: return "trim";
  case NBD_CMD_WRITE_ZEROES: return "write zeroes";
  case NBD_CMD_BLOCK_STATUS: return "block status";
  default: return "unknown command";
  }
}

/* A client's request refused: logged at the engine's bounded rate
 * (zq_log_refusal), unless the server itself is short of memory.
 */
static void
refuse (struct request *req, int error, const char *why)
{
  char message[512];

  snprintf (message, sizeof message, "%s: %s at offset %" PRIu64 " length %"
            PRIu32 " refused: %s", zq_filename (export.img),
            command_name (req->type), req->offset, req->count, why);
  if (error == ENOMEM)
    server_error ("%s", message);
  else
    zq_log_refusal (export.img, "%s", message);
  req->error = error;
  req->why = why;
}

/* The command flags each command may carry.  FUA is accepted on every
 * command, as the protocol asks once SEND_FUA is advertised.
 */
static uint16_t
allowed_flags (const struct connection *conn, uint16_t type)
{
  switch (type) {
  case NBD_CMD_READ:
    return NBD_CMD_FLAG_FUA |
      (conn->eflags & NBD_FLAG_SEND_DF ? NBD_CMD_FLAG_DF : 0);
  case NBD_CMD_WRITE_ZEROES:
    return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE |
      NBD_CMD_FLAG_FAST_ZERO;
  case NBD_CMD_BLOCK_STATUS:
    return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE;
  default:
    return NBD_CMD_FLAG_FUA;
  }
}

/* Checks a request that arrived whole.  A refusal is left in req->error
 * for the worker to send, so that replies keep one path.
 */
static void
check_request (const struct connection *conn, struct request *req)
{
  bool writes = req->type == NBD_CMD_WRITE || req->type == NBD_CMD_TRIM ||
                req->type == NBD_CMD_WRITE_ZEROES;

  if (req->error)               /* already refused while reading */
    return;
  switch (req->type) {
  case NBD_CMD_READ: case NBD_CMD_WRITE: case NBD_CMD_FLUSH:
  case NBD_CMD_TRIM: case NBD_CMD_WRITE_ZEROES: case NBD_CMD_BLOCK_STATUS:
    break;
  default:
    return refuse (req, EINVAL, "not a command this server implements");
  }
  if (req->flags & ~allowed_flags (conn, req->type))
    return refuse (req, EINVAL, "a command flag not allowed for it");
  if (writes && export.readonly)
    return refuse (req, EPERM, "the export is read-only");
  if (req->type == NBD_CMD_FLUSH)
    return;
  if (req->count == 0)
    return refuse (req, EINVAL, "zero length");
  if (req->type == NBD_CMD_READ && req->count > MAX_REQUEST_BYTES)
    return refuse (req, EOVERFLOW, "longer than the maximum payload size "
                   "(32 MiB)");
  if (req->offset > export.size || req->count > export.size - req->offset)
    return refuse (req, EINVAL, "past the end of the export");
  if (req->type == NBD_CMD_BLOCK_STATUS && conn->meta_contexts == 0)
    return refuse (req, EINVAL, "no metadata context was negotiated");
}

/* Reads one request, with a write's payload.  Returns 0, or -1 when the
 * connection ends: closed by the client, lost, or broken by a protocol
 * violation.
 */
static int
read_request (struct connection *conn, struct request *req)
{
  uint8_t header[NBD_REQUEST_SIZE];

  if (recv_all (conn->fd, header, sizeof header) == -1) {
    if (errno != 0 && !atomic_load (&conn->dead))
      server_debug ("connection %d: %m", conn->fd);
    return -1;
  }
  if (get_be32 (header) != NBD_REQUEST_MAGIC) {
    server_error ("connection %d: bad request magic 0x%08" PRIx32
                  ", hanging up", conn->fd, get_be32 (header));
    return -1;
  }
  req->flags = get_be16 (header + 4);
  req->type = get_be16 (header + 6);
  req->cookie = get_be64 (header + 8);
  req->offset = get_be64 (header + 16);
  req->count = get_be32 (header + 24);

  if (req->type != NBD_CMD_WRITE)
    return 0;
  /* The payload must be read off the wire whatever becomes of the
   * request, or the next request would be read from the middle of it.
   */
  if (req->count > MAX_REQUEST_BYTES) {
    refuse (req, EOVERFLOW, "longer than the maximum payload size (32 MiB)");
    return recv_discard (conn->fd, req->count);
  }
  if (request_buffer (req, req->count) == -1) {
    refuse (req, ENOMEM, "out of memory for the payload");
    return recv_discard (conn->fd, req->count);
  }
  return recv_all (conn->fd, req->buf, req->count);
}

void
transmission (struct connection *conn)
{
  for (;;) {
    struct request *req = request_get (conn);

    if (atomic_load (&conn->dead) || read_request (conn, req) == -1) {
      request_put (conn, req);
      return;
    }
    if (req->type == NBD_CMD_DISC) {
      /* The workers finish what is queued before the socket closes. */
      server_debug ("connection %d: disconnect requested", conn->fd);
      request_put (conn, req);
      return;
    }
    check_request (conn, req);
    request_queue (conn, req);
  }
}

/* NBD_CMD_READ.  Returns -1 (errno set) only when the read itself
 * failed, for the caller to send the error.
 */
static int
execute_read (struct connection *conn, struct request *req)
{
  uint8_t offset[8];

  if (request_buffer (req, req->count) == -1 ||
      zq_pread (export.img, req->buf, req->count, req->offset) == -1)
    return -1;
  if (!conn->structured_replies)
    reply_simple (conn, req, 0, req->buf, req->count);
  else {
    /* One chunk for the whole read: it is at most 32 MiB, so DF is always
     * honoured, and the data is complete before the chunk goes out.
     */
    put_be64 (offset, req->offset);
    reply_chunk (conn, req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
                 offset, sizeof offset, req->buf, req->count);
  }
  return 0;
}

/* Runs one request on the engine and replies, unless the engine parked
 * it (then it returns false).  On a worker thread.
 */
bool
execute_request (struct connection *conn, struct request *req)
{
  bool fua = (req->flags & NBD_CMD_FLAG_FUA) != 0;
  unsigned zero_flags;
  int r = 0;

  if (req->error) {
    reply_error (conn, req, req->error, req->why);
    return true;
  }
  /* A request still queued when a shutdown began is not started; a parked
   * one comes back to be finished.
   */
  if (atomic_load (&shutting_down) && req->park.since_ns == 0) {
    reply_error (conn, req, ESHUTDOWN, "the server is shutting down");
    return true;
  }

  engine_error_clear ();
  switch (req->type) {
  case NBD_CMD_READ:
    r = execute_read (conn, req);
    break;
  case NBD_CMD_WRITE:
    r = zq_pwrite_parked (export.img, req->buf, req->count, req->offset,
                          fua ? ZQ_FUA : 0, &req->park);
    if (r == ZQ_PARKED)
      return false;
    if (r == 0)
      reply_ok (conn, req);
    break;
  case NBD_CMD_FLUSH:
    r = zq_flush (export.img);
    if (r == 0)
      reply_ok (conn, req);
    break;
  case NBD_CMD_TRIM:
    r = zq_trim (export.img, req->count, req->offset, fua ? ZQ_FUA : 0);
    if (r == 0)
      reply_ok (conn, req);
    break;
  case NBD_CMD_WRITE_ZEROES:
    zero_flags = fua ? ZQ_FUA : 0;
    if (!(req->flags & NBD_CMD_FLAG_NO_HOLE))
      zero_flags |= ZQ_MAY_TRIM;
    if (req->flags & NBD_CMD_FLAG_FAST_ZERO)
      zero_flags |= ZQ_FAST_ZERO;
    r = zq_zero_parked (export.img, req->count, req->offset, zero_flags,
                        &req->park);
    if (r == ZQ_PARKED)
      return false;
    if (r == 0)
      reply_ok (conn, req);
    break;
  case NBD_CMD_BLOCK_STATUS:
    r = block_status (conn, req);
    break;
  }
  if (r == -1)
    reply_error (conn, req, errno, engine_error_message ());
  return true;
}
