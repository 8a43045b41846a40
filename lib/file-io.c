/* Plain file I/O: whole-buffer pread and pwrite that retry short
 * transfers and EINTR, and the shared buffer of zeroes that writes of
 * zeroes send.  The lowest layer that touches a file descriptor: every
 * layer above (the one write path in image-write.c, the caches, create
 * and the offline readers) reads and writes through these.
 */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

const uint8_t zq_zero_cluster[ZQ_ZERO_BYTES];

int
full_pread (int fd, void *buf, size_t count, uint64_t offset)
{
  uint8_t *p = buf;

  while (count > 0) {
    ssize_t r = pread (fd, p, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {               /* end of file: the rest reads as zeroes */
      memset (p, 0, count);
      return 0;
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

int
full_pwrite (int fd, const void *buf, size_t count, uint64_t offset)
{
  const uint8_t *p = buf;

  while (count > 0) {
    ssize_t r = pwrite (fd, p, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}
