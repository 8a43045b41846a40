/* Reading an image file offline, without serving it: opening it
 * read-only, parsing its header and finding its header extensions, for
 * zq_info (zqcow2-img info) and zq_check (zqcow2-img check).
 *
 * Nothing here writes a byte, and nothing goes through zq_open: the
 * readers must work on images the engine would refuse (compressed with
 * zstd, dirty, marked corrupt, with a broken zoned extension), since
 * those are the images one wants to look at.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "be.h"
#include "image-file.h"
#include "internal.h"
#include "qcow2-format.h"

void
image_file_close (struct image_file *f)
{
  header_free (&f->h);
  free (f->first_cluster);
  if (f->fd >= 0)
    close (f->fd);
  f->fd = -1;
  f->first_cluster = NULL;
}

/* Opens read-only and parses the header.  Logs and fails on anything that
 * makes the rest of the file uninterpretable.
 */
int
image_file_open (struct image_file *f, const char *filename)
{
  uint8_t first[QH_V3_LENGTH];
  struct stat st;
  char why[512];
  int saved_errno;

  memset (f, 0, sizeof *f);
  f->filename = filename;
  f->fd = open (filename, O_RDONLY | O_CLOEXEC);
  if (f->fd == -1) {
    saved_errno = errno;
    zq_error ("%s: %s", filename, strerror (saved_errno));
    errno = saved_errno;
    return -1;
  }
  if (fstat (f->fd, &st) == -1 ||
      full_pread (f->fd, first, sizeof first, 0) == -1)
    goto io_error;
  f->file_size = st.st_size;
  f->disk_size = (uint64_t) st.st_blocks * 512;
  f->first_len = header_bytes_needed (first, sizeof first);
  f->first_cluster = malloc (f->first_len);
  if (f->first_cluster == NULL)
    goto io_error;
  if (full_pread (f->fd, f->first_cluster, f->first_len, 0) == -1)
    goto io_error;
  if (header_parse (f->first_cluster, f->first_len, f->file_size, &f->h,
                    why, sizeof why) == -1) {
    saved_errno = errno;
    zq_error ("%s: %s", filename, why);
    image_file_close (f);
    errno = saved_errno;
    return -1;
  }
  f->cluster_size = UINT64_C (1) << f->h.cluster_bits;
  return 0;

 io_error:
  saved_errno = errno;
  zq_error ("%s: reading the header: %s", filename, strerror (saved_errno));
  image_file_close (f);
  errno = saved_errno;
  return -1;
}

/* The payload of header extension `magic`, or NULL. */
const uint8_t *
image_file_find_extension (const struct image_file *f, uint32_t magic,
                           uint32_t *len)
{
  size_t pos = f->h.version == 2 ? QH_V2_LENGTH : f->h.header_length;
  size_t end = f->first_len < f->cluster_size ? f->first_len
                                              : f->cluster_size;

  while (pos + 8 <= end) {
    uint32_t m = load_be32 (f->first_cluster + pos);
    uint32_t l = load_be32 (f->first_cluster + pos + 4);

    if (m == QCOW2_EXT_END || l > end - pos - 8)
      return NULL;
    if (m == magic) {
      *len = l;
      return f->first_cluster + pos + 8;
    }
    pos += 8 + (((uint64_t) l + 7) & ~(uint64_t) 7);
  }
  return NULL;
}
