/* Metadata overlap protection: which host clusters of the image file hold
 * metadata, so that no write lands on metadata it is not meant for and
 * no allocation hands out a metadata cluster.
 *
 * As QEMU's overlap checks (qcow2_check_metadata_overlap, "cached" mode)
 * guard the header, the L1 table, the refcount table and blocks, the
 * active L2 tables, the snapshot table and the snapshots' L1 tables and
 * the bitmap directory, this set holds the kind of each of their clusters,
 * plus the write-pointer table of the zoned format.  It is built once at
 * open and kept current as tables are allocated, moved and freed, so a
 * check costs a hash probe per 1024 clusters of the write, not a scan of
 * the tables.
 *
 * Locking: checks (overlap_find, overlap_kind_at) take no lock, so a
 * guest data write, which holds no other lock, pays a few loads.
 * Changes (overlap_add, overlap_remove) serialize on the set's mutex, a
 * leaf lock taken under meta_lock, never held across a call.
 */
#ifndef ZQ_OVERLAP_H
#define ZQ_OVERLAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zq_image;
struct overlap_set;

/* What a host cluster holds, and what a write to the image file writes:
 * a write may land on clusters of its own kind (an L2 table on an L2
 * table) or on clusters of no kind, never on others.
 */
enum meta_kind {
  META_NONE = 0,                /* guest data, free space */
  META_HEADER,                  /* the first cluster: header, extensions */
  META_L1,
  META_REFCOUNT_TABLE,
  META_REFCOUNT_BLOCK,
  META_L2,
  META_SNAPSHOT_TABLE,
  META_SNAPSHOT_L1,
  META_BITMAP_DIRECTORY,
  META_WP_TABLE,
  META_NR_KINDS
};

/* "the refcount table", "an L2 table": for messages. */
const char *meta_kind_name (enum meta_kind kind);

/* Builds the set from the image's header and in-memory tables (and the
 * snapshot table, read from the file).  Entries that cannot be tables
 * (unaligned, beyond the end of the file) are left out: using them fails
 * later, where they are looked up.  -1 with errno on failure (logged).
 */
int overlap_build (struct zq_image *img, uint64_t file_size);
void overlap_free (struct overlap_set *set);

/* Marks clusters [offset, offset + bytes) (bytes rounded up to clusters)
 * as `kind`, or clears those of them that have that kind.  Marking a
 * cluster that already has another kind keeps the old kind, so a table
 * found at a cluster of another kind is detected where it is used
 * (overlap_kind_at).  -1 (ENOMEM, logged) when the set cannot grow: the
 * caller treats it as the failure of the allocation it records.
 */
int overlap_add (struct zq_image *img, enum meta_kind kind, uint64_t offset,
                 uint64_t bytes);
void overlap_remove (struct zq_image *img, enum meta_kind kind,
                     uint64_t offset, uint64_t bytes);

/* The kind of the host cluster at offset. */
enum meta_kind overlap_kind_at (struct zq_image *img, uint64_t offset);

/* Whether L1 entry i, or refcount table entry ti, pointed at a table
 * recorded as such when the image was opened (or was 0).  Entries the
 * engine writes later point at tables it recorded itself, so these are
 * decided once, at open, and cost a bit test per lookup.
 */
bool overlap_l1_entry_valid (const struct zq_image *img, uint64_t i);
bool overlap_reftable_entry_valid (const struct zq_image *img, uint64_t ti);

/* For a table entry that points at `offset` where no table of its kind
 * was recorded: "which holds the refcount table" (made in buf), or
 * "which is beyond the end of the file or holds guest data".
 */
const char *overlap_where (struct zq_image *img, uint64_t offset,
                           char *buf, size_t len);

/* Whether [offset, offset + count) touches a cluster of a kind other than
 * `own` and META_NONE: if so returns true and sets *kind and *at (the
 * host offset of the first such cluster).
 */
bool overlap_find (struct zq_image *img, enum meta_kind own,
                   uint64_t offset, uint64_t count,
                   enum meta_kind *kind, uint64_t *at);

/* The image is corrupt: logs "FILE: " and the sentence, sets incompatible
 * bit 1 on disk (durably, once) so that the next read-write open refuses
 * the image, stops every later write to the file, and fails with EIO.
 * Read-only images are not changed.  Returns -1.
 */
int image_corrupt (struct zq_image *img, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));

#endif /* ZQ_OVERLAP_H */
