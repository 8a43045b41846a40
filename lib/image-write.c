/* The one path of every write to an open image's files.
 *
 * Before a write reaches the image file it is checked against the
 * metadata it may not touch (overlap.c): guest data lands on no metadata,
 * a table only on tables of its own kind.  A write that would overlap is
 * refused with EIO and the image is marked corrupt, as QEMU does; after
 * that, no write reaches the image file at all.  Each write that returns
 * sets the unsynced mark (file-sync.c), here and nowhere else.  Writes to an external
 * data file hold only guest data and are not checked.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/uio.h>

#include "internal.h"
#include "overlap.h"

/* Whether the write may go ahead; -1 with errno EIO if not. */
static int
check_write (struct zq_image *img, int fd, enum meta_kind kind,
             uint64_t count, uint64_t offset)
{
  enum meta_kind hit;
  uint64_t at;

  if (fd != img->fd)
    return 0;
  if (__atomic_load_n (&img->corrupt, __ATOMIC_ACQUIRE)) {
    zq_debug ("%s: refusing a write of %s at 0x%" PRIx64 ": the image is "
              "marked corrupt", img->filename, meta_kind_name (kind), offset);
    errno = EIO;
    return -1;
  }
  if (overlap_find (img, kind, offset, count, &hit, &at))
    return image_corrupt (img, "preventing a write of %s at 0x%" PRIx64
                          " (%" PRIu64 " bytes): it overlaps %s at 0x%"
                          PRIx64, meta_kind_name (kind), offset, count,
                          meta_kind_name (hit), at);
  return 0;
}

int
image_pwrite (struct zq_image *img, int fd, enum meta_kind kind,
              const void *buf, size_t count, uint64_t offset)
{
  if (check_write (img, fd, kind, count, offset) == -1 ||
      full_pwrite (fd, buf, count, offset) == -1)
    return -1;
  sync_mark_written (img);
  return 0;
}

int
image_pwritev (struct zq_image *img, int fd, enum meta_kind kind,
               struct iovec *iov, int iovcnt, uint64_t offset)
{
  uint64_t count = 0;
  int i;

  for (i = 0; i < iovcnt; i++)
    count += iov[i].iov_len;
  if (check_write (img, fd, kind, count, offset) == -1)
    return -1;
  while (iovcnt > 0) {
    ssize_t r = pwritev (fd, iov, iovcnt, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    offset += r;
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
  sync_mark_written (img);
  return 0;
}

/* Only data files get holes punched (data-file.c): the overlap check of
 * the image file does not apply.
 */
int
image_punch_hole (struct zq_image *img, int fd, uint64_t count,
                  uint64_t offset)
{
  if (fallocate (fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                 offset, count) == -1)
    return -1;
  sync_mark_written (img);
  return 0;
}
