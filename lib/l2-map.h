/* Guest offset to host cluster: the L1 table and L2 tables. */
#ifndef ZQ_L2_MAP_H
#define ZQ_L2_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* A run of guest bytes whose clusters are of one type and, when they have
 * host clusters, lie back to back in the file.
 */
struct map_run {
  enum cluster_type type;
  uint64_t host_offset;         /* of the run's first byte, if allocated */
  uint64_t bytes;
  bool copied;                  /* refcount is 1: may be written in place */
  uint64_t compressed_entry;    /* CLUSTER_COMPRESSED: its L2 entry */
};

/* Describes the clusters from guest `offset` on, for at most max_bytes
 * and never past the end of one L2 table.  meta_lock held.
 */
int map_lookup (struct zq_image *img, uint64_t offset, uint64_t max_bytes,
                struct map_run *run);

/* Takes meta_lock for a critical section that may read or change the
 * L2 table of guest offset `offset`, first making room in the L2 cache
 * when that table is not cached, so that the miss evicts without a
 * sync under the lock (metacache_make_room: the lock may be dropped and
 * retaken before this returns).  So the caller must not
 * count on anything it saw under an earlier hold of meta_lock without
 * looking it up again; the range locks it holds are fine, since no one
 * waits for a range lock holding meta_lock (internal.h).
 */
void map_lock (struct zq_image *img, uint64_t offset);

/* map_lookup for a caller that does not hold meta_lock: takes it for the
 * lookup only (the caller's range lock keeps the run valid).
 */
int map_lookup_run (struct zq_image *img, uint64_t offset,
                    uint64_t max_bytes, struct map_run *run);

/* The L2 table covering guest `offset`, allocating an empty one when
 * there is none.  *l2_index is the entry of offset's cluster.  The pointer
 * is valid until the next call on the L2 cache.  meta_lock held.
 */
int map_l2_for_update (struct zq_image *img, uint64_t offset,
                       uint8_t **l2_table, uint64_t *l2_index);

/* Like map_l2_for_update but never allocates: *l2_table is NULL when the
 * L1 entry is empty.
 */
int map_l2_existing (struct zq_image *img, uint64_t offset,
                     uint8_t **l2_table, uint64_t *l2_index);

/* Like map_l2_existing, for changing the entries: an L2 table shared
 * with an internal snapshot is copied first (l2-cow.c).
 */
int map_l2_existing_for_update (struct zq_image *img, uint64_t offset,
                                uint8_t **l2_table, uint64_t *l2_index);

/* Decodes one L2 entry; -1 (EIO, logged) if the entry is corrupt. */
int map_decode_entry (struct zq_image *img, uint64_t guest_offset,
                      uint64_t entry, enum cluster_type *type,
                      uint64_t *host_offset);

/* Guest bytes covered by one L2 table. */
static inline uint64_t
l2_coverage (const struct zq_image *img)
{
  return UINT64_C (1) << (img->l2_bits + img->cluster_bits);
}

#endif /* ZQ_L2_MAP_H */
