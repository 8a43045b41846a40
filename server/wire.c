/* Whole-buffer socket I/O for the NBD code (wire.h). */
#include <config.h>

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire.h"

int
recv_all (int fd, void *buf, size_t count)
{
  uint8_t *p = buf;

  while (count > 0) {
    ssize_t r = recv (fd, p, count, 0);

    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {
      errno = 0;
      return -1;
    }
    p += r;
    count -= r;
  }
  return 0;
}

int
recv_discard (int fd, uint64_t count)
{
  uint8_t sink[16384];

  while (count > 0) {
    size_t n = count < sizeof sink ? count : sizeof sink;

    if (recv_all (fd, sink, n) == -1)
      return -1;
    count -= n;
  }
  return 0;
}

int
send_all (int fd, struct iovec *iov, int iovcnt)
{
  while (iovcnt > 0) {
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = iovcnt };
    ssize_t r = sendmsg (fd, &msg, MSG_NOSIGNAL);

    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    /* Skip what went out, possibly ending inside a vector. */
    while (iovcnt > 0 && (size_t) r >= iov->iov_len) {
      r -= iov->iov_len;
      iov++;
      iovcnt--;
    }
    if (iovcnt > 0) {
      iov->iov_base = (uint8_t *) iov->iov_base + r;
      iov->iov_len -= r;
    }
  }
  return 0;
}
