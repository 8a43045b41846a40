/* Extended L2 entries: subclusters.
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
 * Writes allocate only the subclusters they touch: a cluster without a
 * host cluster gets one, but the copy-on-write covers only the partial
 * subclusters at the edges of the write; the other subclusters stay
 * unallocated.  A host cluster shared with a snapshot, or compressed data,
 * is still copied whole, with its bitmap.
 *
 * Write-zeroes and trim are in subcluster-zero.c.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "internal.h"
#include "l2-map.h"
#include "refcount.h"
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

int64_t
subcluster_write (struct zq_image *img, const struct map_run *run,
                  const uint8_t *buf, uint64_t offset)
{
  uint64_t cs = img->cluster_size, cluster = cluster_floor (img, offset);
  uint64_t start = offset - cluster, len = run->bytes, end;
  uint64_t index, host = 0, got, from, to, old_alloc, touched, new_alloc;
  unsigned first, last;
  struct ext_entry old;
  uint8_t *table, *data = NULL;
  bool fresh = false, had_data;

  if (len > cs - start)
    len = cs - start;
  end = start + len;
  first = start >> img->subcluster_bits;
  last = (end - 1) >> img->subcluster_bits;
  touched = subcluster_mask (first, last);

  map_lock (img, offset);
  if (map_l2_for_update (img, offset, &table, &index) == -1 ||
      subcluster_load_entry (img, table, index, cluster, &old) == -1)
    goto fail_unlock;
  had_data = old.compressed || old.has_host;
  old_alloc = old.compressed ? ALL_SUBCLUSTERS : old.bitmap & ALL_SUBCLUSTERS;
  if (has_data_file (img)) {
    /* The data file's cluster at the guest offset, written in place. */
    host = old.has_host ? old.host : cluster;
  }
  else {
    /* Written in place only into a host cluster of its own. */
    fresh = old.compressed || !old.has_host || !old.copied;
    if (fresh && refcount_alloc (img, 1, &host, &got) == -1) {
      fresh = false;
      goto fail_unlock;
    }
    if (!fresh)
      host = old.host;
  }
  pthread_mutex_unlock (&img->meta_lock);

  /* The host bytes to write: the touched subclusters whole, with what
   * they read as before around the new data; only the old data of a
   * shared or compressed cluster is copied whole.  An allocated
   * subcluster written in place needs no copy.
   */
  if (fresh && had_data) {
    from = 0;
    to = cs;
  }
  else {
    from = !fresh && ((old_alloc >> first) & 1) ?
           start : (uint64_t) first << img->subcluster_bits;
    to = !fresh && ((old_alloc >> last) & 1) ?
         end : (uint64_t) (last + 1) << img->subcluster_bits;
  }
  data = cow_buffer ();          /* per thread: no allocation per write */
  if (data == NULL)
    goto fail;
  if ((start > from &&
       read_locked (img, data, start - from, cluster + from) == -1) ||
      (to > end &&
       read_locked (img, data + end - from, to - end, cluster + end) == -1))
    goto fail;
  memcpy (data + start - from, buf, len);
  if (image_pwrite (img, img->data_fd, META_NONE, data, to - from,
                    host + from) == -1) {
    int saved_errno = errno;
    if (!write_refused (img))
      zq_error ("%s: writing guest offset 0x%" PRIx64 " to host offset 0x%"
                PRIx64 ": %m", img->filename, cluster + from, host + from);
    errno = saved_errno == ENOSPC ? ENOSPC : EIO;
    goto fail;
  }

  /* The entry only once its data is written.  The range lock keeps
   * other requests off this entry; the table may have moved.
   */
  map_lock (img, offset);
  if (map_l2_for_update (img, offset, &table, &index) == -1)
    goto fail_unlock;
  new_alloc = old_alloc | touched;
  subcluster_store_entry (table, index, host | QCOW2_OFLAG_COPIED,
               new_alloc | ((old.bitmap >> 32) & ~new_alloc) << 32);
  metacache_mark_dirty (img->l2_cache, table);
  if (fresh && (old.compressed || old.has_host))
    queue_free_entry (img, old.compressed, old.entry, old.host);
  pthread_mutex_unlock (&img->meta_lock);
  return len;

 fail:
  pthread_mutex_lock (&img->meta_lock);
 fail_unlock:
  if (fresh) {
    /* Nothing points at the new cluster yet: give it back at once. */
    int saved_errno = errno;
    refcount_update (img, host >> img->cluster_bits, -1);
    errno = saved_errno;
  }
  pthread_mutex_unlock (&img->meta_lock);
  return -1;
}
