/* Backing files: where the clusters an image has not allocated read from.
 *
 * A backing file is a qcow2 image (opened read-only as a zq_image of its
 * own, so a chain of any depth is a chain of zq_images) or a raw file.
 * Backing files are only ever read: every file below the top is opened
 * O_RDONLY.  Past the end of a backing file shorter than the image, the
 * guest reads zeroes (qcow2 spec, "Unallocated clusters").
 *
 * Zoned images cannot have a backing file: everything past a zone's
 * write pointer must read as zeroes and a zone reset must make a whole
 * zone read as zeroes again; with a backing file both would need the
 * zero flag on every cluster of every empty zone, which zoned images do
 * not maintain, so the combination is refused at open.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "be.h"
#include "internal.h"

struct zq_backing {
  char *filename;               /* as opened: resolved, or as given */
  const char *format;           /* "qcow2" or "raw" */
  struct zq_image *image;       /* qcow2: the backing image */
  int fd;                       /* raw: the file, else -1 */
  uint64_t size;                /* guest bytes it holds */
};

/* The format of the backing file open on fd: the one the header names
 * (backing format extension), else probed: qcow2 magic, else raw.
 */
static int
pick_format (struct zq_image *img, int fd, const char *path,
             const char *named, const char **format)
{
  uint8_t magic[4];

  if (named != NULL && named[0] != '\0') {
    if (strcmp (named, "qcow2") == 0)
      *format = "qcow2";
    else if (strcmp (named, "raw") == 0)
      *format = "raw";
    else {
      zq_error ("%s: backing file %s has format '%s' (backing format "
                "extension); zqcow2 supports qcow2 and raw backing files",
                img->filename, path, named);
      errno = ENOTSUP;
      return -1;
    }
    return 0;
  }
  if (full_pread (fd, magic, sizeof magic, 0) == -1) {
    zq_error ("%s: backing file %s: reading its first bytes: %m",
              img->filename, path);
    errno = EIO;
    return -1;
  }
  *format = load_be32 (magic) == QCOW2_MAGIC ? "qcow2" : "raw";
  return 0;
}

/* Refuses a file that is already in the chain above it (a loop), and a
 * chain deeper than ZQ_MAX_BACKING_DEPTH.
 */
static int
check_chain (struct zq_image *img, const char *path, const struct stat *st,
             const struct open_chain *chain)
{
  const struct open_chain *c;

  for (c = chain; c != NULL; c = c->above)
    if (c->dev == st->st_dev && c->ino == st->st_ino) {
      zq_error ("%s: backing file %s is already in the backing chain "
                "above it (the chain loops)", img->filename, path);
      errno = ELOOP;
      return -1;
    }
  if (chain->depth + 1 > ZQ_MAX_BACKING_DEPTH) {
    zq_error ("%s: backing file %s would be backing file number %u of "
              "the chain; at most %d are supported", img->filename, path,
              chain->depth + 1, ZQ_MAX_BACKING_DEPTH);
    errno = ELOOP;
    return -1;
  }
  return 0;
}

void
backing_free (struct zq_backing *backing)
{
  if (backing == NULL)
    return;
  if (backing->image)
    zq_close (backing->image);
  if (backing->fd >= 0)
    close (backing->fd);
  free (backing->filename);
  free (backing);
}

int
backing_open (struct zq_image *img, const struct zq_open_options *options,
              const struct open_chain *chain)
{
  const struct qcow2_header *h = &img->header;
  const char *name, *named_format = NULL;
  struct zq_backing *backing;
  struct stat st;
  int fd;

  if (options->no_backing)
    return 0;
  if (options->backing_file != NULL)
    name = options->backing_file;      /* as given, format probed */
  else if (h->backing_file_offset != 0 && h->backing_file[0] != '\0') {
    name = h->backing_file;
    named_format = h->backing_format;
  }
  else
    return 0;

  if (h->incompatible_features & QCOW2_INCOMPAT_ZONED) {
    zq_error ("%s: the image is zoned and has a backing file (%s); zoned "
              "images cannot have one (data past a write pointer and in "
              "reset zones must read as zeroes, not as the backing "
              "file's data)", img->filename, name);
    errno = ENOTSUP;
    return -1;
  }

  backing = calloc (1, sizeof *backing);
  if (backing == NULL)
    return -1;
  backing->fd = -1;
  backing->filename = options->backing_file != NULL ? strdup (name)
                      : name_beside_image (img->filename, name);
  if (backing->filename == NULL)
    goto fail;

  fd = open (backing->filename, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    int saved_errno = errno;
    if (saved_errno == ENOENT &&
        (strncmp (name, "json:", 5) == 0 || strstr (name, "://") != NULL)) {
      zq_error ("%s: backing file \"%s\" looks like a QEMU protocol or "
                "json: name; zqcow2 opens backing files by file name only "
                "(give it with backing=FILE, or zqcow2-nbd --backing=FILE)",
                img->filename, name);
      errno = ENOTSUP;
      goto fail;
    }
    if (strcmp (backing->filename, name) != 0)
      zq_error ("%s: cannot open its backing file %s (named \"%s\" in the "
                "header): %s", img->filename, backing->filename, name,
                strerror (saved_errno));
    else
      zq_error ("%s: cannot open its backing file %s: %s", img->filename,
                backing->filename, strerror (saved_errno));
    errno = saved_errno;
    goto fail;
  }
  backing->fd = fd;
  if (fstat (fd, &st) == -1) {
    zq_error ("%s: backing file %s: fstat: %m", img->filename,
              backing->filename);
    goto fail;
  }
  if (check_chain (img, backing->filename, &st, chain) == -1 ||
      pick_format (img, fd, backing->filename, named_format,
                   &backing->format) == -1)
    goto fail;

  if (strcmp (backing->format, "qcow2") == 0) {
    const struct zq_open_options backing_options = {
      .filename = backing->filename,
      .readonly = true,
      .l2_cache_bytes = options->l2_cache_bytes,
    };

    close (backing->fd);
    backing->fd = -1;
    backing->image = image_open (&backing_options, chain);
    if (backing->image == NULL) {
      /* The failing image said why; the top image says whose chain it
       * was (one line, not one per layer of a deep chain).
       */
      int saved_errno = errno;
      if (chain->depth == 0)
        zq_error ("%s: cannot open its backing file %s (see above)",
                  img->filename, backing->filename);
      errno = saved_errno;
      goto fail;
    }
    if (backing->image->zones != NULL) {
      zq_error ("%s: backing file %s is a zoned image; zoned images "
                "cannot be backing files", img->filename, backing->filename);
      errno = ENOTSUP;
      goto fail;
    }
    backing->size = backing->image->virtual_size;
  }
  else
    backing->size = st.st_size;

  zq_debug ("%s: backing file %s (%s, %" PRIu64 " bytes)", img->filename,
            backing->filename, backing->format, backing->size);
  img->backing = backing;
  return 0;

 fail:
  {
    int saved_errno = errno ? errno : EINVAL;
    backing_free (backing);
    errno = saved_errno;
  }
  return -1;
}

const char *
backing_filename (const struct zq_image *img)
{
  return img->backing ? img->backing->filename : NULL;
}

const char *
backing_format (const struct zq_image *img)
{
  return img->backing ? img->backing->format : NULL;
}

bool
backing_reaches (const struct zq_image *img, uint64_t offset)
{
  return img->backing != NULL && offset < img->backing->size;
}

/* Bytes of [offset, offset + count) the backing file holds; the rest
 * reads as zeroes.
 */
static uint64_t
backed_bytes (const struct zq_backing *backing, uint64_t count,
              uint64_t offset)
{
  if (offset >= backing->size)
    return 0;
  return count < backing->size - offset ? count : backing->size - offset;
}

int
backing_read (struct zq_image *img, uint8_t *buf, uint64_t count,
              uint64_t offset)
{
  struct zq_backing *backing = img->backing;
  uint64_t n = backed_bytes (backing, count, offset);

  if (n > 0) {
    if (backing->image != NULL) {
      if (qcow2_read (backing->image, buf, n, offset) == -1) {
        int saved_errno = errno;
        zq_error ("%s: reading guest offset 0x%" PRIx64 " from the "
                  "backing file %s failed (see above)", img->filename,
                  offset, backing->filename);
        errno = saved_errno;
        return -1;
      }
    }
    else if (full_pread (backing->fd, buf, n, offset) == -1) {
      zq_error ("%s: reading guest offset 0x%" PRIx64 " from the backing "
                "file %s: %m", img->filename, offset, backing->filename);
      errno = EIO;
      return -1;
    }
  }
  memset (buf + n, 0, count - n);
  return 0;
}

/* A raw backing file's extents: its data is data, its holes read as
 * zeroes (as qemu's file driver reports them).  Every byte of it is its
 * own, holes too: depth 1, as qemu sees a raw file allocated throughout.
 */
static int
raw_block_status (struct zq_backing *backing, uint64_t count,
                  uint64_t offset, zq_extent_depth_fn fn, void *opaque)
{
  while (count > 0) {
    off_t data = lseek (backing->fd, offset, SEEK_DATA);
    uint64_t n;
    uint32_t flags;

    if (data == -1 && errno != ENXIO) {
      n = count;                        /* cannot tell: data */
      flags = 0;
    }
    else if (data == -1 || (uint64_t) data > offset) {
      n = data == -1 ? count : (uint64_t) data - offset;
      flags = ZQ_EXTENT_HOLE | ZQ_EXTENT_ZERO;
    }
    else {
      off_t hole = lseek (backing->fd, offset, SEEK_HOLE);
      n = hole == -1 ? count : (uint64_t) hole - offset;
      flags = 0;
    }
    if (n == 0 || n > count)
      n = count;
    if (fn (opaque, offset, n, flags, 1) == -1)
      return 1;
    offset += n;
    count -= n;
  }
  return 0;
}

int
backing_block_status (struct zq_image *img, uint64_t count, uint64_t offset,
                      unsigned split, zq_extent_depth_fn fn, void *opaque)
{
  struct zq_backing *backing = img->backing;
  uint64_t n = backed_bytes (backing, count, offset);
  int r = 0;

  if (n > 0) {
    r = backing->image != NULL
      ? qcow2_block_status (backing->image, n, offset, split, fn, opaque)
      : raw_block_status (backing, n, offset, fn, opaque);
    if (r != 0)
      return r;
  }
  /* Past its end the backing file provides the zeroes (depth 1). */
  if (n < count &&
      fn (opaque, offset + n, count - n, ZQ_EXTENT_HOLE | ZQ_EXTENT_ZERO,
          1) == -1)
    return 1;
  return 0;
}
