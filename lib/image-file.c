/* Reading an image file offline, without serving it: opening it
 * read-only and reading its header through header_read, keeping the
 * first cluster for header_find_extension, for zq_info (zqcow2-img info)
 * and zq_check (zqcow2-img check).
 *
 * Nothing here writes a byte, and nothing goes through zq_open: the
 * readers must work on images the engine would refuse (compressed with
 * zstd, dirty, marked corrupt, with a broken zoned extension), since
 * those are the images one wants to look at.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image-file.h"
#include "internal.h"

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
  if (fstat (f->fd, &st) == -1) {
    saved_errno = errno;
    snprintf (why, sizeof why, "reading the header: %s",
              strerror (saved_errno));
    errno = saved_errno;
    goto fail;
  }
  f->file_size = st.st_size;
  f->disk_size = (uint64_t) st.st_blocks * 512;
  if (header_read (f->fd, f->file_size, &f->h, &f->first_cluster,
                   &f->first_len, NULL, why, sizeof why) == -1)
    goto fail;
  f->cluster_size = UINT64_C (1) << f->h.cluster_bits;
  return 0;

 fail:
  saved_errno = errno;
  zq_error ("%s: %s", filename, why);
  image_file_close (f);
  errno = saved_errno;
  return -1;
}
