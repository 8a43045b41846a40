/* Moving bytes: big-endian fields and whole-buffer socket I/O.  The NBD
 * code builds every message in a byte buffer with these helpers rather
 * than casting structs onto it.
 */
#ifndef ZQ_SERVER_WIRE_H
#define ZQ_SERVER_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

static inline void
put_be16 (uint8_t *p, uint16_t v)
{
  p[0] = v >> 8;
  p[1] = v;
}

static inline void
put_be32 (uint8_t *p, uint32_t v)
{
  put_be16 (p, v >> 16);
  put_be16 (p + 2, v);
}

static inline void
put_be64 (uint8_t *p, uint64_t v)
{
  put_be32 (p, v >> 32);
  put_be32 (p + 4, v);
}

static inline uint16_t
get_be16 (const uint8_t *p)
{
  return (uint16_t) p[0] << 8 | p[1];
}

static inline uint32_t
get_be32 (const uint8_t *p)
{
  return (uint32_t) get_be16 (p) << 16 | get_be16 (p + 2);
}

static inline uint64_t
get_be64 (const uint8_t *p)
{
  return (uint64_t) get_be32 (p) << 32 | get_be32 (p + 4);
}

/* Reads exactly count bytes.  Returns 0, or -1 on error or when the peer
 * closed the connection first (errno 0 then: a clean end, not a fault).
 */
int recv_all (int fd, void *buf, size_t count);

/* Reads and drops count bytes, e.g. the payload of a refused request. */
int recv_discard (int fd, uint64_t count);

/* Writes every byte of the vectors, which it may modify.  Returns 0 or -1.
 * Never raises SIGPIPE.
 */
int send_all (int fd, struct iovec *iov, int iovcnt);

#endif /* ZQ_SERVER_WIRE_H */
