/* External data files (incompatible bit 2, header extension 0x44415441).
 *
 * The image keeps the metadata; the data file holds the guest's bytes at
 * host offset == guest offset, like a raw image with holes where the L2
 * entries say "unallocated" or "zero".  With autoclear bit 1
 * (data_file_raw) those holes must read as zeroes too, so that the data
 * file alone is a valid raw image of the guest; data_file_zero keeps it so.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

char *
name_beside_image (const char *image, const char *name)
{
  const char *slash = strrchr (image, '/');
  char *path;

  if (name[0] == '/' || slash == NULL)
    return strdup (name);
  if (asprintf (&path, "%.*s/%s", (int) (slash - image), image, name) == -1)
    return NULL;
  return path;
}

int
data_file_open (struct zq_image *img, const char *override)
{
  const char *name = override ? override : img->header.data_file_name;

  if (name == NULL || name[0] == '\0')
    return zq_refuse (img->filename, EINVAL, "%s", "the image has an external "
                      "data file (incompatible bit 2) but does not name it; "
                      "give it with data-file=FILE (nbdkit) or "
                      "--data-file=FILE (zqcow2-nbd)");
  img->data_filename = override ? strdup (override)
                                : name_beside_image (img->filename, name);
  if (img->data_filename == NULL)
    return zq_refuse (img->filename, ENOMEM, "%s",
                      "out of memory for the data file name");
  img->data_fd = open (img->data_filename,
                       (img->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (img->data_fd == -1) {
    int saved_errno = errno;
    zq_file_error (img->filename, "external data file %s: %s",
                   img->data_filename, strerror (saved_errno));
    errno = saved_errno;
    return -1;
  }
  zq_debug ("%s: guest data in %s%s", img->filename, img->data_filename,
            (img->header.autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW)
            ? " (data_file_raw)" : "");
  return 0;
}

int
data_file_zero (struct zq_image *img, uint64_t count, uint64_t offset)
{
  uint64_t done;

  if (!img->data_file_raw || count == 0)
    return 0;
  /* A punched hole reads back as zeroes and costs no space. */
  if (image_punch_hole (img, img->data_fd, count, offset) == 0)
    return 0;
  for (done = 0; done < count; ) {
    uint64_t len = count - done < ZQ_ZERO_BYTES ? count - done
                                                : ZQ_ZERO_BYTES;
    if (image_pwrite (img, img->data_fd, META_NONE, zq_zero_cluster, len,
                      offset + done) == -1) {
      int saved_errno = errno;
      zq_error ("%s: writing zeroes at 0x%" PRIx64 " of the data file %s: "
                "%m", img->filename, offset + done, img->data_filename);
      errno = saved_errno == ENOSPC ? ENOSPC : EIO;
      return -1;
    }
    done += len;
  }
  return 0;
}
