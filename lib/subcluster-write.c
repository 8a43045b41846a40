/* Extended L2 entries: writing data into subclusters, for the data
 * layer (io-write.c calls subcluster_write).  The entry format and its
 * decoding are in subcluster-map.c; this is the second half of what was
 * subcluster.c, apart so that it can call the data layer's helpers
 * (cow_buffer, read_locked) from within that layer.
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
#include <string.h>

#include "internal.h"
#include "l2-map.h"
#include "refcount.h"
#include "subcluster.h"

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
