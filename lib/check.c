/* zq_check (zqcow2-img check): looking at an image offline, without
 * serving it.  The file is opened read-only (image-file.c) and never
 * written, and zq_open is not used, so that images the engine would
 * refuse can be checked too.
 *
 * The check rebuilds every host cluster's reference count from the
 * metadata, the way qemu-img check does, and compares it with the stored
 * refcounts: a stored refcount lower than the references is a corruption
 * (the cluster may be handed out again while in use), a higher one is a
 * leak (wasted space, no harm to data).  Its messages follow qemu-img
 * check's wording, prefixed with the file name.
 *
 * This file drives the check, loads and compares the refcounts and holds
 * the helpers every walk uses; the walks themselves are in
 * check-tables.c (L1, L2, snapshots), check-bitmaps.c and check-zoned.c.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "check-internal.h"
#include "qcow2-format.h"
#include "refcount.h"

/* Counts one reference to every cluster of [offset, offset + size). */
void
check_inc_refs (struct checker *c, const char *what, uint64_t offset,
                uint64_t size)
{
  uint64_t first, last, k;

  if (size == 0)
    return;
  first = offset >> c->cluster_bits;
  last = offset + size - 1 < offset ? UINT64_MAX
                                     : (offset + size - 1) >> c->cluster_bits;
  if (last >= c->nb_clusters) {
    CORRUPTION ("ERROR: %s at offset 0x%" PRIx64 " (size 0x%" PRIx64
                ") is beyond the end of the file (%" PRIu64 " bytes)",
                what, offset, size, c->f.file_size);
    return;
  }
  for (k = first; k <= last; k++)
    if (c->references[k] < UINT32_MAX)
      c->references[k]++;
}

int
check_read_at (struct checker *c, const char *what, void *buf, size_t len,
               uint64_t offset)
{
  if (full_pread (c->f.fd, buf, len, offset) == -1) {
    CHECK_ERROR ("ERROR: reading the %s at offset 0x%" PRIx64 ": %s",
                 what, offset, strerror (errno));
    return -1;
  }
  return 0;
}

/* The refcount table and blocks: counts their clusters and loads the
 * stored refcounts.
 */
static int
load_refcounts (struct checker *c)
{
  const struct qcow2_header *h = &c->f.h;
  uint64_t cs = c->cluster_size, i, j;
  uint64_t reftable_bytes = (uint64_t) h->refcount_table_clusters * cs;
  uint64_t per_block = UINT64_C (1) << c->refblock_bits;
  uint8_t *reftable, *block;

  c->refcount_table_entries = reftable_bytes / 8;
  /* One flag per table entry, plus those covering clusters past it. */
  c->refblock_unknown = calloc ((c->nb_clusters >> c->refblock_bits) + 1 +
                                c->refcount_table_entries, sizeof (bool));
  reftable = malloc (reftable_bytes);
  block = malloc (cs);
  if (c->refblock_unknown == NULL || reftable == NULL || block == NULL) {
    free (reftable);
    free (block);
    errno = ENOMEM;
    return -1;
  }

  check_inc_refs (c, "refcount table", h->refcount_table_offset,
                  reftable_bytes);
  if (check_read_at (c, "refcount table", reftable, reftable_bytes,
                     h->refcount_table_offset) == -1) {
    for (i = 0; i <= c->nb_clusters >> c->refblock_bits; i++)
      c->refblock_unknown[i] = true;
    goto out;
  }

  for (i = 0; i < c->refcount_table_entries; i++) {
    uint64_t entry = load_be64 (reftable + i * 8);
    uint64_t offset = entry & QCOW2_REFT_OFFSET_MASK;
    uint64_t first = i << c->refblock_bits;

    if (entry & ~QCOW2_REFT_OFFSET_MASK)
      CORRUPTION ("ERROR refcount table entry %" PRIu64 " (0x%016" PRIx64
                  ") has reserved bits 0-8 set", i, entry);
    if (offset == 0)
      continue;                 /* no block: those clusters are free */
    if (offset & (cs - 1)) {
      CORRUPTION ("ERROR refcount block %" PRIu64 " at offset 0x%" PRIx64
                  " is not cluster aligned; refcount table entry corrupted",
                  i, offset);
      c->refblock_unknown[i] = true;
      continue;
    }
    if ((offset >> c->cluster_bits) >= c->nb_clusters) {
      CORRUPTION ("ERROR refcount block %" PRIu64 " at offset 0x%" PRIx64
                  " is outside the image (%" PRIu64 " bytes)",
                  i, offset, c->f.file_size);
      c->refblock_unknown[i] = true;
      continue;
    }
    check_inc_refs (c, "refcount block", offset, cs);
    if (first >= c->nb_clusters)
      continue;                 /* covers only clusters past the file */
    if (check_read_at (c, "refcount block", block, cs, offset) == -1) {
      c->refblock_unknown[i] = true;
      continue;
    }
    for (j = 0; j < per_block && first + j < c->nb_clusters; j++)
      c->refcounts[first + j] =
        refblock_entry_get (block, h->refcount_order, j);
  }

 out:
  free (reftable);
  free (block);
  return 0;
}

/* Stored refcounts against rebuilt references, cluster by cluster. */
static void
compare_refcounts (struct checker *c)
{
  uint64_t k, highest = 0;
  bool any = false;

  for (k = 0; k < c->nb_clusters; k++) {
    uint64_t refs = c->references[k];
    uint64_t stored;

    if (c->refblock_unknown[k >> c->refblock_bits]) {
      if (refs) {
        highest = k;
        any = true;
      }
      continue;
    }
    stored = c->refcounts[k];
    if (stored || refs) {
      highest = k;
      any = true;
    }
    if (refs > c->refcount_max)
      CORRUPTION ("ERROR cluster %" PRIu64 " has %" PRIu64 " references, "
                  "more than %u-bit refcounts can count", k, refs,
                  1u << c->f.h.refcount_order);
    else if (stored < refs)
      CORRUPTION ("ERROR cluster %" PRIu64 " refcount=%" PRIu64
                  " reference=%" PRIu64, k, stored, refs);
    else if (stored > refs) {
      PROBLEM (leaks, "Leaked cluster %" PRIu64 " refcount=%" PRIu64
               " reference=%" PRIu64, k, stored, refs);
    }
  }
  c->res->image_end_offset = any ? (highest + 1) * c->cluster_size : 0;
}

/* Opens the file and rebuilds every host cluster's references from the
 * metadata; with `compare`, also compares them with the stored refcounts
 * (zq_check).  Otherwise hands the references to the caller in *refs_out
 * (nb_out entries, one per cluster of the file).
 */
static int
count_references (const char *filename, struct zq_check_result *result,
                  bool compare, bool bitmaps_only,
                  uint32_t **refs_out, uint64_t *nb_out)
{
  struct checker checker, *c = &checker;
  const struct qcow2_header *h;
  uint64_t unknown;
  char names[512];
  int r = -1, saved_errno;

  memset (result, 0, sizeof *result);
  memset (c, 0, sizeof *c);
  c->res = result;
  c->rebuilding = !compare;
  if (image_file_open (&c->f, filename) == -1)
    return -1;
  h = &c->f.h;

  unknown = h->incompatible_features & ~ZQ_KNOWN_INCOMPATIBLE;
  if (unknown) {
    header_describe_features (h, 0, unknown, names, sizeof names);
    zq_error ("%s: unknown incompatible feature(s): %s; the image cannot "
              "be checked", filename, names);
    image_file_close (&c->f);
    errno = ENOTSUP;
    return -1;
  }

  c->cluster_size = c->f.cluster_size;
  c->cluster_bits = h->cluster_bits;
  c->nb_clusters = (c->f.file_size + c->cluster_size - 1) >> c->cluster_bits;
  /* qemu-img check refuses the same (EFBIG, "File too large"): the
   * per-cluster arrays would be absurd, and so would the walk.
   */
  if (c->nb_clusters > INT_MAX) {
    zq_error ("%s: the file is %" PRIu64 " bytes, %" PRIu64 " clusters of "
              "%" PRIu64 " bytes, more than the %d a check can count; the "
              "image cannot be checked", filename, c->f.file_size,
              c->nb_clusters, c->cluster_size, INT_MAX);
    image_file_close (&c->f);
    errno = EFBIG;
    return -1;
  }
  c->refblock_bits = c->cluster_bits + 3 - h->refcount_order;
  c->refcount_max = h->refcount_order == 6 ? UINT64_MAX
    : (UINT64_C (1) << (1u << h->refcount_order)) - 1;
  c->extended_l2 = (h->incompatible_features & QCOW2_INCOMPAT_EXTL2) != 0;
  c->data_file = (h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE) != 0;
  result->total_clusters =
    (h->size + c->cluster_size - 1) >> c->cluster_bits;

  c->references = calloc (c->nb_clusters ? c->nb_clusters : 1,
                          sizeof *c->references);
  c->refcounts = calloc (c->nb_clusters ? c->nb_clusters : 1,
                         sizeof *c->refcounts);
  if (c->references == NULL || c->refcounts == NULL) {
    zq_error ("%s: out of memory for the refcounts of %" PRIu64
              " clusters", filename, c->nb_clusters);
    errno = ENOMEM;
    goto out;
  }

  if (compare && (h->incompatible_features & QCOW2_INCOMPAT_DIRTY))
    zq_warning ("%s: the image is dirty (incompatible bit 0: lazy "
                "refcounts were not written back); refcount errors are "
                "expected until 'qemu-img check -r all' repairs it",
                filename);
  if (h->incompatible_features & QCOW2_INCOMPAT_CORRUPT)
    zq_warning ("%s: the image is marked corrupt (incompatible bit 1)",
                filename);

  /* The stored refcounts first, so that OFLAG_COPIED can be checked
   * against them while walking the L2 tables.
   */
  if (bitmaps_only) {
    if (check_bitmaps (c) == -1) {
      zq_error ("%s: out of memory during the check", filename);
      errno = ENOMEM;
      goto out;
    }
    goto done;
  }
  check_inc_refs (c, "header", 0, c->cluster_size);
  if (load_refcounts (c) == -1 ||
      check_l1 (c, "L1 table", h->l1_table_offset, h->l1_size, true) == -1 ||
      check_snapshots (c) == -1 ||
      check_bitmaps (c) == -1 ||
      check_zoned (c) == -1) {
    zq_error ("%s: out of memory during the check", filename);
    errno = ENOMEM;
    goto out;
  }

 done:
  if (compare)
    compare_refcounts (c);
  else {
    *refs_out = c->references;
    *nb_out = c->nb_clusters;
    c->references = NULL;
  }
  r = 0;

 out:
  saved_errno = errno;
  free (c->references);
  free (c->refcounts);
  free (c->refblock_unknown);
  image_file_close (&c->f);
  errno = saved_errno;
  return r;
}

int
zq_check (const char *filename, struct zq_check_result *result)
{
  return count_references (filename, result, true, false, NULL, NULL);
}

int
check_rebuild_references (const char *filename,
                          struct zq_check_result *result,
                          uint32_t **references, uint64_t *nb_clusters)
{
  return count_references (filename, result, false, false, references,
                           nb_clusters);
}

int
check_bitmap_references (const char *filename,
                         struct zq_check_result *result,
                         uint32_t **references, uint64_t *nb_clusters)
{
  return count_references (filename, result, false, true, references,
                           nb_clusters);
}
