/* Reading the header of an image file: the first cluster read from the
 * file and parsed by header_parse.  The one path by which zq_open
 * (image.c) and the offline readers (image-file.c: info and check) get
 * a header, so both read the same bytes and trust the same checks.  It
 * does I/O, so it sits in the file layer, above the parser in header.c.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "header.h"
#include "internal.h"

int
header_read (int fd, uint64_t file_size, struct qcow2_header *h,
             uint8_t **first_cluster, size_t *first_len, bool *read_error,
             char *why, size_t why_len)
{
  uint8_t first[QH_V3_LENGTH];
  uint8_t *buf;
  size_t len;
  int saved_errno;

  if (read_error)
    *read_error = false;
  if (full_pread (fd, first, sizeof first, 0) == -1)
    goto read_failed;
  /* The fixed fields say how big the first cluster is. */
  len = header_bytes_needed (first, sizeof first);
  buf = malloc (len);
  if (buf == NULL) {
    saved_errno = errno;
    snprintf (why, why_len, "reading the header: %s", strerror (errno));
    errno = saved_errno;
    return -1;
  }
  if (full_pread (fd, buf, len, 0) == -1) {
    saved_errno = errno;
    free (buf);
    errno = saved_errno;
    goto read_failed;
  }
  if (header_parse (buf, len, file_size, h, why, why_len) == -1) {
    saved_errno = errno;
    free (buf);
    errno = saved_errno;
    return -1;
  }
  if (first_cluster) {
    *first_cluster = buf;
    *first_len = len;
  }
  else
    free (buf);
  return 0;

 read_failed:
  saved_errno = errno;
  if (read_error)
    *read_error = true;
  snprintf (why, why_len, "reading the header: %s", strerror (errno));
  errno = saved_errno;
  return -1;
}
