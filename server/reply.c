/* Writing replies.  Every reply, or every chunk of a structured reply, is
 * written whole under the connection's send lock, so that replies from
 * different workers never interleave on the wire.
 */
#include <config.h>

#include <errno.h>
#include <string.h>

#include "connection.h"
#include "nbd-protocol.h"
#include "server.h"
#include "wire.h"

/* The protocol fixes its own error numbers; anything the engine returns
 * outside that list becomes EIO.
 */
uint32_t
nbd_error (int error)
{
  switch (error) {
  case 0: return 0;
  case EPERM: case EROFS: return NBD_EPERM;
  case EIO: return NBD_EIO;
  case ENOMEM: return NBD_ENOMEM;
  case EINVAL: return NBD_EINVAL;
  case ENOSPC: case EDQUOT: case EFBIG: return NBD_ENOSPC;
  case EOVERFLOW: return NBD_EOVERFLOW;
#if ENOTSUP != EOPNOTSUPP
  case EOPNOTSUPP:
#endif
  case ENOTSUP: return NBD_ENOTSUP;
  case ESHUTDOWN: return NBD_ESHUTDOWN;
  default: return NBD_EIO;
  }
}

static int
send_locked (struct connection *conn, struct iovec *iov, int iovcnt)
{
  int r;

  if (atomic_load (&conn->dead))
    return -1;
  pthread_mutex_lock (&conn->send_lock);
  r = send_all (conn->fd, iov, iovcnt);
  pthread_mutex_unlock (&conn->send_lock);
  if (r == -1) {
    server_debug ("connection %d: cannot send a reply: %m", conn->fd);
    connection_fail (conn);
  }
  return r;
}

int
reply_simple (struct connection *conn, const struct request *req,
              int error, const void *data, size_t len)
{
  uint8_t header[NBD_SIMPLE_REPLY_SIZE];
  struct iovec iov[2] = {
    { .iov_base = header, .iov_len = sizeof header },
    { .iov_base = (void *) data, .iov_len = len },
  };

  put_be32 (header, NBD_SIMPLE_REPLY_MAGIC);
  put_be32 (header + 4, nbd_error (error));
  put_be64 (header + 8, req->cookie);
  return send_locked (conn, iov, len > 0 ? 2 : 1);
}

/* One chunk: the chunk header, then a small fixed part (an offset, a
 * context id, an error code) and the bulk of the payload.
 */
int
reply_chunk (struct connection *conn, const struct request *req,
             uint16_t flags, uint16_t type,
             const void *head, size_t head_len,
             const void *data, size_t data_len)
{
  uint8_t header[NBD_STRUCTURED_REPLY_SIZE];
  struct iovec iov[3] = {
    { .iov_base = header, .iov_len = sizeof header },
    { .iov_base = (void *) head, .iov_len = head_len },
    { .iov_base = (void *) data, .iov_len = data_len },
  };

  put_be32 (header, NBD_STRUCTURED_REPLY_MAGIC);
  put_be16 (header + 4, flags);
  put_be16 (header + 6, type);
  put_be64 (header + 8, req->cookie);
  put_be32 (header + 16, head_len + data_len);
  return send_locked (conn, iov, 3);
}

/* The error, with the engine's message when there is one, as the final
 * chunk of a structured reply, or as a simple reply.
 */
int
reply_error (struct connection *conn, const struct request *req,
             int error, const char *message)
{
  uint8_t head[6];
  size_t len;

  if (!conn->structured_replies)
    return reply_simple (conn, req, error, NULL, 0);

  len = message ? strlen (message) : 0;
  if (len > 1024)
    len = 1024;
  put_be32 (head, nbd_error (error));
  put_be16 (head + 4, len);
  return reply_chunk (conn, req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR,
                      head, sizeof head, message, len);
}

/* Success with no payload: a simple reply is allowed even when
 * structured replies were negotiated, and is shorter.
 */
int
reply_ok (struct connection *conn, const struct request *req)
{
  return reply_simple (conn, req, 0, NULL, 0);
}
