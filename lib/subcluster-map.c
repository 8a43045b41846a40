/* Extended L2 entries: decoding subclusters, for the mapping layer.
 *
 * With incompatible bit 4 an L2 entry is 16 bytes: the usual descriptor
 * (whose zero flag, bit 0, is unused) and a bitmap where bit n says that
 * subcluster n is allocated (its data is in the host cluster at the same
 * offset) and bit 32 + n that it reads as zeroes.  A subcluster with
 * neither bit is unallocated: it reads from the backing file, or as
 * zeroes without one.  A compressed cluster is one unit; its bitmap is 0.
 * With an external data file the host cluster is the guest cluster's own
 * offset in the data file: never allocated, shared or released here.
 *
 * This file only reads entries: map_lookup (l2-map.c) calls
 * subcluster_lookup for extended L2 images, and the writers of the data
 * layer (subcluster-write.c, subcluster-zero.c) decode the entry they
 * change with subcluster_load_entry.  It was the first half of
 * subcluster.c, split off so that the mapping layer does not call into
 * the data layer.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>

#include "be.h"
#include "internal.h"
#include "l2-map.h"
#include "subcluster.h"

int
subcluster_load_entry (struct zq_image *img, const uint8_t *table,
                       uint64_t index, uint64_t guest_cluster,
                       struct ext_entry *e)
{
  enum cluster_type type;

  e->entry = load_be64 (table + index * 16);
  e->bitmap = load_be64 (table + index * 16 + 8);
  if (map_decode_entry (img, guest_cluster, e->entry & ~QCOW2_OFLAG_ZERO,
                        &type, &e->host) == -1)
    return -1;
  e->has_host = type == CLUSTER_NORMAL;
  e->compressed = type == CLUSTER_COMPRESSED;
  e->copied = (e->entry & QCOW2_OFLAG_COPIED) != 0;
  if (e->compressed && has_data_file (img)) {
    zq_error ("%s: guest offset 0x%" PRIx64 " is a compressed cluster, "
              "which an image with an external data file cannot have "
              "(corrupt image)", img->filename, guest_cluster);
    errno = EIO;
    return -1;
  }
  return 0;
}

static int
subcluster_type (struct zq_image *img, uint64_t guest_cluster,
                 const struct ext_entry *e, unsigned sc,
                 enum cluster_type *type)
{
  bool allocated = (e->bitmap >> sc) & 1;
  bool zero = (e->bitmap >> (32 + sc)) & 1;

  if (allocated && (zero || !e->has_host)) {
    zq_error ("%s: guest offset 0x%" PRIx64 ": subcluster %u has an "
              "invalid allocation bitmap 0x%016" PRIx64 " (host cluster "
              "0x%" PRIx64 ", corrupt image)", img->filename,
              guest_cluster, sc, e->bitmap, e->host);
    errno = EIO;
    return -1;
  }
  if (allocated)
    *type = CLUSTER_NORMAL;
  else if (zero)
    *type = e->has_host ? CLUSTER_ZERO_ALLOC : CLUSTER_ZERO_PLAIN;
  else
    *type = CLUSTER_UNALLOCATED;
  return 0;
}

int
subcluster_lookup (struct zq_image *img, uint64_t offset, uint64_t max_bytes,
                   struct map_run *run)
{
  uint64_t entries = UINT64_C (1) << img->l2_bits, index, bytes = 0;
  uint64_t guest = offset;
  uint8_t *table;

  if (map_l2_existing (img, offset, &table, &index) == -1)
    return -1;
  run->type = CLUSTER_UNALLOCATED;
  run->host_offset = 0;
  run->copied = false;
  run->compressed_entry = 0;
  if (table == NULL) {
    bytes = ((entries - index) << img->cluster_bits) -
            offset_into_cluster (img, offset);
    goto done;
  }

  for (; bytes < max_bytes && index < entries; index++) {
    uint64_t cluster = cluster_floor (img, guest);
    struct ext_entry e;
    unsigned sc;

    if (subcluster_load_entry (img, table, index, cluster, &e) == -1)
      return -1;
    if (e.compressed) {
      /* Compressed clusters are handled one at a time. */
      if (bytes == 0) {
        run->type = CLUSTER_COMPRESSED;
        run->compressed_entry = e.entry;
        bytes = cluster + img->cluster_size - guest;
      }
      goto done;
    }
    for (sc = (guest - cluster) >> img->subcluster_bits;
         sc < QCOW2_SUBCLUSTERS && bytes < max_bytes; sc++) {
      uint64_t sc_end = cluster + ((uint64_t) (sc + 1) << img->subcluster_bits);
      enum cluster_type type;
      uint64_t host;

      if (subcluster_type (img, cluster, &e, sc, &type) == -1)
        return -1;
      host = type == CLUSTER_NORMAL ? e.host + (guest - cluster) : 0;
      if (bytes == 0) {
        run->type = type;
        run->host_offset = host;
        run->copied = type == CLUSTER_NORMAL && e.copied;
      }
      else if (type != run->type ||
               (type == CLUSTER_NORMAL &&
                (host != run->host_offset + bytes || e.copied != run->copied)))
        goto done;
      bytes += sc_end - guest;
      guest = sc_end;
    }
  }

 done:
  run->bytes = bytes < max_bytes ? bytes : max_bytes;
  return 0;
}
