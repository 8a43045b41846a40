/* Making writes durable, in the order that keeps the image consistent at
 * every point:
 *
 *   1. refcount blocks (new references are counted before they exist);
 *   2. sync: guest data and refcounts are durable;
 *   3. L2 tables (they may now point at that data);
 *   4. sync, then the L1 entries of new L2 tables; sync;
 *   5. only now release the clusters whose references were dropped, so a
 *      cluster is never reused while a durable table still points at it,
 *      and write their refcounts at once (unsynced: a crash before the
 *      next sync leaks them at worst) so that few leak when the process
 *      is killed.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <unistd.h>

#include "be.h"
#include "internal.h"
#include "qcow2-format.h"
#include "refcount.h"

/* The data file first: its data is durable before any L2 entry that
 * points at it, as with data in the image itself.
 */
int
sync_file (struct zq_image *img)
{
  if (has_data_file (img) && fdatasync (img->data_fd) == -1) {
    zq_error ("%s: fdatasync of the data file %s: %m", img->filename,
              img->data_filename);
    errno = EIO;
    return -1;
  }
  if (fdatasync (img->fd) == -1) {
    zq_error ("%s: fdatasync: %m", img->filename);
    errno = EIO;
    return -1;
  }
  img->unsynced_writes = false;
  return 0;
}

void
queue_free (struct zq_image *img, uint64_t host_offset, uint64_t nr_clusters)
{
  uint64_t first = host_offset >> img->cluster_bits;
  struct pending_free *last;

  if (img->nr_pending_frees > 0) {
    last = &img->pending_frees[img->nr_pending_frees - 1];
    if (last->first_cluster + last->nr_clusters == first) {
      last->nr_clusters += nr_clusters;
      img->pending_free_clusters += nr_clusters;
      return;
    }
  }
  if (img->nr_pending_frees == img->pending_frees_alloc) {
    size_t n = img->pending_frees_alloc ? img->pending_frees_alloc * 2 : 64;
    struct pending_free *p = realloc (img->pending_frees, n * sizeof *p);
    if (p == NULL) {
      /* Not fatal: the clusters leak, the image stays consistent. */
      zq_warning ("%s: out of memory; leaking %" PRIu64 " clusters at 0x%"
                  PRIx64, img->filename, nr_clusters, host_offset);
      return;
    }
    img->pending_frees = p;
    img->pending_frees_alloc = n;
  }
  img->pending_frees[img->nr_pending_frees++] =
    (struct pending_free) { first, nr_clusters };
  img->pending_free_clusters += nr_clusters;
}

void
queue_free_compressed (struct zq_image *img, uint64_t entry)
{
  uint64_t offset, size, first, last;

  qcow2_compressed_extent (img->cluster_bits, entry, &offset, &size);
  first = offset >> img->cluster_bits;
  last = (offset + size - 1) >> img->cluster_bits;
  queue_free (img, first << img->cluster_bits, last - first + 1);
}

static void
apply_pending_frees (struct zq_image *img)
{
  size_t i;

  for (i = 0; i < img->nr_pending_frees; i++) {
    const struct pending_free *f = &img->pending_frees[i];
    for (uint64_t c = f->first_cluster;
         c < f->first_cluster + f->nr_clusters; c++) {
      uint64_t host = c << img->cluster_bits;
      /* A failure here leaks the cluster; refcount_update said why. */
      if (refcount_update (img, c, -1) == 0) {
        metacache_forget (img->l2_cache, host);
        metacache_forget (img->refblock_cache, host);
      }
    }
  }
  img->nr_pending_frees = 0;
  img->pending_free_clusters = 0;
}

static int
write_l1_entries (struct zq_image *img)
{
  uint32_t first = img->l1_dirty_first, end = img->l1_dirty_end, i;
  uint8_t entry[8];

  /* Entries are written one by one, each an atomic 8-byte write, so a
   * crash leaves every entry either old or new.
   */
  for (i = first; i < end; i++) {
    store_be64 (entry, img->l1_table[i]);
    if (full_pwrite (img->fd, entry, 8,
                     img->header.l1_table_offset + (uint64_t) i * 8) == -1) {
      zq_error ("%s: writing L1 entry %" PRIu32 ": %m", img->filename, i);
      errno = EIO;
      return -1;
    }
  }
  img->unsynced_writes = true;
  img->l1_dirty_first = img->l1_dirty_end = 0;
  return 0;
}

int
flush_metadata (struct zq_image *img)
{
  if (img->readonly)
    return 0;
  if (metacache_writeback (img->refblock_cache) == -1 ||
      sync_file (img) == -1 ||
      metacache_writeback (img->l2_cache) == -1)
    return -1;
  if (img->l1_dirty_first != img->l1_dirty_end) {
    if (img->unsynced_writes && sync_file (img) == -1)
      return -1;
    if (write_l1_entries (img) == -1)
      return -1;
  }
  if (img->unsynced_writes && sync_file (img) == -1)
    return -1;
  if (img->nr_pending_frees > 0) {
    apply_pending_frees (img);
    if (metacache_writeback (img->refblock_cache) == -1)
      return -1;
  }
  return 0;
}
