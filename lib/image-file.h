/* Reading an image file offline, without serving it: the file opened
 * read-only, its header parsed and its first cluster kept for
 * header_find_extension.  Used by
 * zq_info (info.c) and zq_check (check.c).
 */
#ifndef ZQ_IMAGE_FILE_H
#define ZQ_IMAGE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "header.h"

/* An opened image: its header and the first cluster it came from. */
struct image_file {
  const char *filename;
  int fd;
  uint64_t file_size;
  uint64_t disk_size;           /* bytes allocated to the file */
  uint8_t *first_cluster;       /* header and extensions */
  size_t first_len;
  struct qcow2_header h;
  uint64_t cluster_size;
};

/* Opens read-only and parses the header.  Logs and fails on anything that
 * makes the rest of the file uninterpretable.
 */
int image_file_open (struct image_file *f, const char *filename);
void image_file_close (struct image_file *f);

#endif /* ZQ_IMAGE_FILE_H */
