/* Extended L2 entries (incompatible bit 4): each cluster is 32
 * subclusters, each allocated, zero or unallocated on its own.
 */
#ifndef ZQ_SUBCLUSTER_H
#define ZQ_SUBCLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "be.h"
#include "internal.h"

struct map_run;

#define ALL_SUBCLUSTERS UINT64_C (0xffffffff)

/* One extended L2 entry, decoded. */
struct ext_entry {
  uint64_t entry;
  uint64_t bitmap;
  uint64_t host;                /* host cluster, if has_host */
  bool has_host;                /* 0 is a valid host offset in a data file */
  bool compressed;
  bool copied;
};

/* subcluster-map.c (mapping layer): the entry format, decoded. */

/* Decodes entry `index` of an L2 table (for guest_cluster, in messages).
 * A compressed cluster in an image with a data file is corrupt: EIO.
 */
int subcluster_load_entry (struct zq_image *img, const uint8_t *table,
                           uint64_t index, uint64_t guest_cluster,
                           struct ext_entry *e);

static inline void
subcluster_store_entry (uint8_t *table, uint64_t index, uint64_t entry,
                        uint64_t bitmap)
{
  store_be64 (table + index * 16, entry);
  store_be64 (table + index * 16 + 8, bitmap);
}

/* Subclusters first..last (inclusive) as bitmap bits. */
static inline uint64_t
subcluster_mask (unsigned first, unsigned last)
{
  return (ALL_SUBCLUSTERS >> (31 - last + first)) << first;
}

/* map_lookup for extended L2 images: runs end where the type of a
 * subcluster changes.  meta_lock held.
 */
int subcluster_lookup (struct zq_image *img, uint64_t offset,
                       uint64_t max_bytes, struct map_run *run);

/* subcluster-write.c, subcluster-zero.c (data layer): changing them. */

/* Writes the start of `run` (at guest `offset`, not an allocated
 * subcluster of a cluster that may be written in place), never past the
 * end of the cluster.  Range lock held.  Returns the bytes written or -1.
 */
int64_t subcluster_write (struct zq_image *img, const struct map_run *run,
                          const uint8_t *buf, uint64_t offset);

/* Write-zeroes on an extended L2 image, range lock held: whole clusters
 * lose their data (may_trim, or a shared or compressed cluster: the host
 * cluster too), whole subclusters get their zero bit, partial subclusters
 * are written with zeroes.  With dry_run, returns 1 when zeroes would
 * have to be written.
 */
int subcluster_zero (struct zq_image *img, uint64_t count, uint64_t offset,
                     bool may_trim, bool dry_run);

/* Trim of the whole clusters [offset, offset + count): unallocated, host
 * cluster released.  Range lock held.
 */
int subcluster_trim (struct zq_image *img, uint64_t count, uint64_t offset);

#endif /* ZQ_SUBCLUSTER_H */
