/* The queue of pending frees: host clusters whose last reference a
 * table dropped, released (their refcounts decremented) only once the
 * metadata that stopped referencing them is durable, so that a cluster
 * is never reused while a durable table still points at it.  It belongs
 * to the refcount layer: the tables below the flush queue frees, and the
 * flush (flush.c) only decides when to apply them.
 */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>

#include "internal.h"
#include "qcow2-format.h"
#include "refcount.h"

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

void
queue_free_entry (struct zq_image *img, bool compressed, uint64_t entry,
                  uint64_t host)
{
  if (compressed)
    queue_free_compressed (img, entry);
  else
    queue_free (img, host, 1);
}

/* The frees queued so far are this flush's to apply: the tables that
 * stopped referencing those clusters were changed before it started, so
 * it makes them durable.  Frees queued later wait for the next flush.
 * The two lists trade places, so no allocation happens here.
 */
void
take_pending_frees (struct zq_image *img)
{
  struct pending_free *list = img->flushing_frees;
  size_t alloc = img->flushing_frees_alloc;

  img->flushing_frees = img->pending_frees;
  img->flushing_frees_alloc = img->pending_frees_alloc;
  img->nr_flushing_frees = img->nr_pending_frees;
  img->pending_frees = list;
  img->pending_frees_alloc = alloc;
  img->nr_pending_frees = 0;
  img->pending_free_clusters = 0;
}

void
apply_flushing_frees (struct zq_image *img)
{
  size_t i;

  for (i = 0; i < img->nr_flushing_frees; i++) {
    const struct pending_free *f = &img->flushing_frees[i];
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
  img->nr_flushing_frees = 0;
}
