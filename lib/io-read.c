/* Reading guest data. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "compress.h"
#include "internal.h"
#include "l2-map.h"

int
read_run (struct zq_image *img, const struct map_run *run, uint8_t *buf,
          uint64_t guest_offset)
{
  switch (run->type) {
  case CLUSTER_NORMAL:
    if (full_pread (img->data_fd, buf, run->bytes, run->host_offset) == -1) {
      zq_error ("%s: reading guest offset 0x%" PRIx64 " from host offset "
                "0x%" PRIx64 ": %m", img->filename, guest_offset,
                run->host_offset);
      errno = EIO;
      return -1;
    }
    return 0;
  case CLUSTER_UNALLOCATED:
    if (img->backing)
      return backing_read (img, buf, run->bytes, guest_offset);
    /* fall through */
  case CLUSTER_ZERO_PLAIN:
  case CLUSTER_ZERO_ALLOC:
    memset (buf, 0, run->bytes);
    return 0;
  case CLUSTER_COMPRESSED: {
    /* A compressed run is one cluster, or the part of one from
     * guest_offset on.
     */
    const uint8_t *cluster;

    if (has_data_file (img)) {
      zq_error ("%s: guest offset 0x%" PRIx64 " is a compressed cluster, "
                "which an image with an external data file cannot have "
                "(corrupt image)", img->filename, guest_offset);
      errno = EIO;
      return -1;
    }
    if (decompress_cluster (img, run->compressed_entry, guest_offset,
                            &cluster) == -1)
      return -1;
    memcpy (buf, cluster + offset_into_cluster (img, guest_offset),
            run->bytes);
    return 0;
  }
  }
  zq_error ("%s: guest offset 0x%" PRIx64 ": unknown cluster type %d",
            img->filename, guest_offset, (int) run->type);
  errno = EIO;
  return -1;
}

int
read_locked (struct zq_image *img, uint8_t *buf, uint64_t count,
             uint64_t offset)
{
  while (count > 0) {
    struct map_run run;

    if (map_lookup_run (img, offset, count, &run) == -1 ||
        read_run (img, &run, buf, offset) == -1)
      return -1;
    buf += run.bytes;
    offset += run.bytes;
    count -= run.bytes;
  }
  return 0;
}

int
qcow2_read (struct zq_image *img, void *buf, uint64_t count, uint64_t offset)
{
  struct range_lock_node range;
  int r;

  range_lock_acquire (&img->ranges, &range, cluster_floor (img, offset),
                      cluster_ceil (img, offset + count), false);
  r = read_locked (img, buf, count, offset);
  range_lock_release (&img->ranges, &range);
  return r;
}
