/* The checker's state, shared by the files of zq_check: check.c (the
 * driver, the refcounts loaded and compared), check-tables.c (L1, L2 and
 * snapshot tables), check-bitmaps.c (persistent dirty bitmaps) and
 * check-zoned.c (the zoned extension and its write-pointer table).  Each
 * walk counts the references it finds with check_inc_refs and reports
 * problems with the macros below.
 */
#ifndef ZQ_CHECK_INTERNAL_H
#define ZQ_CHECK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image-file.h"
#include "internal.h"

struct checker {
  struct image_file f;
  struct zq_check_result *res;
  uint64_t cluster_size;
  unsigned cluster_bits;
  uint64_t nb_clusters;         /* host clusters the file covers */

  /* Rebuilt references, saturating, and stored refcounts, per host
   * cluster.  A refcount block that could not be read leaves its clusters
   * unknown (no comparison).
   */
  uint32_t *references;
  uint64_t *refcounts;
  bool *refblock_unknown;       /* per refcount table entry */
  uint64_t *refblock_offsets;   /* per entry: its valid block, or 0 */
  uint64_t refcount_table_entries;
  unsigned refblock_bits;
  uint64_t refcount_max;

  bool extended_l2;
  bool data_file;
  uint64_t next_contiguous_offset;

  /* Counting references for a repair (repair.c): the stored refcounts
   * are known to be stale, so OFLAG_COPIED is not checked against them.
   */
  bool rebuilding;
};

/* One problem: "FILE: sentence", counted in c->res->counter. */
#define PROBLEM(counter, ...)                                   \
  do {                                                          \
    zq_file_error (c->f.filename, __VA_ARGS__);                 \
    c->res->counter++;                                          \
  } while (0)
#define CORRUPTION(...) PROBLEM (corruptions, __VA_ARGS__)
#define WP_ERROR(...) PROBLEM (wp_errors, __VA_ARGS__)
#define CHECK_ERROR(...) PROBLEM (check_errors, __VA_ARGS__)

/* check.c: counts one reference to every cluster of
 * [offset, offset + size); a range past the end of the file is a
 * corruption.
 */
void check_inc_refs (struct checker *c, const char *what, uint64_t offset,
                     uint64_t size);

/* check.c: reads len bytes at offset; a failure is a check error. */
int check_read_at (struct checker *c, const char *what, void *buf,
                   size_t len, uint64_t offset);

/* The walks over the metadata.  Each returns -1 (errno ENOMEM) only when
 * it runs out of memory; problems in the image are reported and counted.
 */

/* check-tables.c: one L1 table and every L2 table it points at.
 * `active`: it is the image's own L1 table (not a snapshot's).
 */
int check_l1 (struct checker *c, const char *what, uint64_t l1_offset,
              uint32_t l1_size, bool active);

/* check-tables.c: internal snapshots: the table, and each snapshot's L1
 * and L2 tables.
 */
int check_snapshots (struct checker *c);

/* check-bitmaps.c: persistent dirty bitmaps, when autoclear bit 0 says
 * the extension is current.
 */
int check_bitmaps (struct checker *c);

/* check-zoned.c: the zoned extension, its geometry and every
 * write-pointer entry.
 */
int check_zoned (struct checker *c);

#endif /* ZQ_CHECK_INTERNAL_H */
