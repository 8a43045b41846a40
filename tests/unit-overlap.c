/* The metadata overlap set (lib/overlap.c) on real images made by
 * zq_create, and the bound on the first block status's preallocation
 * detection (lib/block-status.c) on small images in huge sparse files.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "overlap.h"
#include "unit.h"

static char dir[256];
static char path[256];

static void
quiet_log (enum zq_log_level level, const char *message)
{
  (void) level;
  (void) message;
}

static struct zq_image *
open_image (bool readonly)
{
  struct zq_open_options o = { .filename = path, .readonly = readonly };
  struct zq_image *img = zq_open (&o);

  CHECK (img != NULL);
  return img;
}

static void
make_image (uint64_t size, uint32_t cluster_size)
{
  struct zq_create_options o = {
    .filename = path, .size = size, .cluster_size = cluster_size,
  };
  CHECK (zq_create (&o) == 0);
}

/* Every region the header names is recorded at open, L2 tables as they
 * are allocated, and a guest data write may land on none of them.
 */
static void
test_regions (void)
{
  struct zq_image *img;
  enum meta_kind kind;
  uint64_t at, l2;
  uint8_t buf[4096];

  make_image (64 << 20, 65536);
  img = open_image (false);
  if (img == NULL)
    return;
  CHECK (overlap_kind_at (img, 0) == META_HEADER);
  CHECK (overlap_kind_at (img, img->header.l1_table_offset) == META_L1);
  CHECK (overlap_kind_at (img, img->header.refcount_table_offset) ==
         META_REFCOUNT_TABLE);
  CHECK (overlap_kind_at (img, img->refcount_table[0]) ==
         META_REFCOUNT_BLOCK);

  memset (buf, 0x5a, sizeof buf);
  CHECK (zq_pwrite (img, buf, sizeof buf, 1 << 20, 0) == 0);
  l2 = img->l1_table[0] & QCOW2_L1E_OFFSET_MASK;
  CHECK (l2 != 0 && overlap_kind_at (img, l2) == META_L2);

  /* Guest data on the refcount table: found, named, first cluster. */
  CHECK (overlap_find (img, META_NONE, img->header.refcount_table_offset + 8,
                       img->cluster_size, &kind, &at));
  CHECK (kind == META_REFCOUNT_TABLE &&
         at == img->header.refcount_table_offset);
  /* An L2 table write on its own table is fine, on the L1 table not. */
  CHECK (!overlap_find (img, META_L2, l2, img->cluster_size, &kind, &at));
  CHECK (overlap_find (img, META_L2, img->header.l1_table_offset,
                       img->cluster_size, &kind, &at) && kind == META_L1);
  /* A long write over free space only: nothing found. */
  CHECK (!overlap_find (img, META_NONE, UINT64_C (1) << 40, 64 << 20,
                        &kind, &at));
  CHECK (zq_close (img) == 0);
}

/* A table kept at a cluster of another kind keeps that kind, and a
 * removal clears only its own kind.
 */
static void
test_kinds_kept (void)
{
  struct zq_image *img;

  make_image (64 << 20, 65536);
  img = open_image (true);
  if (img == NULL)
    return;
  CHECK (overlap_add (img, META_L2, img->header.refcount_table_offset,
                      img->cluster_size) == 0);
  CHECK (overlap_kind_at (img, img->header.refcount_table_offset) ==
         META_REFCOUNT_TABLE);
  overlap_remove (img, META_L2, img->header.refcount_table_offset,
                  img->cluster_size);
  CHECK (overlap_kind_at (img, img->header.refcount_table_offset) ==
         META_REFCOUNT_TABLE);
  /* Far apart: chunks of their own, and the hash table grows. */
  for (uint64_t i = 0; i < 1000; i++)
    CHECK (overlap_add (img, META_L2, (i << 36) + (UINT64_C (1) << 40),
                        img->cluster_size) == 0);
  for (uint64_t i = 0; i < 1000; i++)
    CHECK (overlap_kind_at (img, (i << 36) + (UINT64_C (1) << 40)) ==
           META_L2);
  CHECK (overlap_kind_at (img, (UINT64_C (1) << 40) + img->cluster_size) ==
         META_NONE);
  zq_close (img);
}

static int
count_extents (void *opaque, uint64_t offset, uint64_t length,
               uint32_t flags)
{
  (void) offset;
  (void) length;
  (void) flags;
  (*(unsigned *) opaque)++;
  return 0;
}

/* A valid 1 MiB image with 512-byte clusters in a sparse file of
 * file_size bytes: the first block status reads the refcount table, not
 * one refcount per cluster of the file (2^31 of them for 1 TiB).
 */
static void
test_preallocation_bound (uint64_t file_size)
{
  struct zq_image *img;
  unsigned extents = 0;
  uint64_t steps;
  int fd;

  make_image (1 << 20, 512);
  fd = open (path, O_WRONLY);
  CHECK (fd >= 0);
  if (ftruncate (fd, file_size) == -1) {
    CHECK (errno == EFBIG);
    fprintf (stderr, "skipped a file of %" PRIu64 " bytes: %s\n",
             file_size, strerror (errno));
    close (fd);
    return;
  }
  close (fd);
  img = open_image (true);
  if (img == NULL)
    return;
  CHECK (zq_block_status (img, 1 << 20, 0, count_extents, &extents) == 0);
  CHECK (extents > 0);
  CHECK (!img->metadata_preallocated);
  steps = img->preallocation_scan_steps;
  /* One step per refcount table entry at most, plus the last look. */
  if (steps > img->refcount_table_entries + 1) {
    fprintf (stderr, "file of %" PRIu64 " bytes: %" PRIu64 " steps for a "
             "refcount table of %" PRIu64 " entries\n", file_size, steps,
             img->refcount_table_entries);
    CHECK (steps <= img->refcount_table_entries + 1);
  }
  zq_close (img);
}

int
main (void)
{
  const char *tmp = getenv ("TMPDIR");

  zq_set_log_fn (quiet_log);
  snprintf (dir, sizeof dir, "%s/unit-overlap.XXXXXX", tmp ? tmp : "/tmp");
  if (mkdtemp (dir) == NULL) {
    perror ("mkdtemp");
    return 1;
  }
  snprintf (path, sizeof path, "%s/img.qcow2", dir);

  test_regions ();
  test_kinds_kept ();
  test_preallocation_bound (UINT64_C (1) << 40);
  unlink (path);
  rmdir (dir);

  /* ext4 files stop at 16 TiB; tmpfs takes 64 TiB (and no blocks). */
  snprintf (dir, sizeof dir, "%s/unit-overlap.XXXXXX",
            access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : tmp ? tmp : "/tmp");
  if (mkdtemp (dir) == NULL) {
    perror ("mkdtemp");
    return 1;
  }
  snprintf (path, sizeof path, "%s/img.qcow2", dir);
  test_preallocation_bound (UINT64_C (64) << 40);
  unlink (path);
  rmdir (dir);
  UNIT_EXIT ();
}
