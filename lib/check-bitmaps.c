/* zq_check's walk over the persistent dirty bitmaps: the bitmap
 * directory named by the bitmaps extension, each bitmap's table and the
 * data clusters it points at.  They are references like any other
 * metadata, so that the clusters of the bitmaps qemu writes are not
 * reported as leaks; repair.c also counts them alone, before clearing
 * autoclear bit 0 (check_bitmap_references).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "be.h"
#include "check-internal.h"
#include "qcow2-format.h"

/* Persistent dirty bitmaps: their directory and tables and the clusters
 * those point at.  Only when the autoclear bit says the extension is
 * current (otherwise a reader ignores it and its clusters are leaks).
 */
int
check_bitmaps (struct checker *c)
{
  const uint8_t *ext;
  uint32_t ext_len, nb_bitmaps, i;
  uint64_t dir_size, dir_offset, pos;
  uint8_t *dir = NULL, *table = NULL;

  if (!(c->f.h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS))
    return 0;
  ext = header_find_extension (c->f.first_cluster, c->f.first_len, &c->f.h,
                               QCOW2_EXT_BITMAPS, &ext_len);
  if (ext == NULL)
    return 0;
  if (ext_len < 24) {
    CORRUPTION ("ERROR: the bitmaps extension is %" PRIu32 " bytes, "
                "shorter than 24", ext_len);
    return 0;
  }
  nb_bitmaps = load_be32 (ext);
  dir_size = load_be64 (ext + 8);
  dir_offset = load_be64 (ext + 16);
  if (nb_bitmaps == 0)
    return 0;
  if (dir_size > (UINT64_C (64) << 20) || (dir_offset & (c->cluster_size - 1))) {
    CORRUPTION ("ERROR: the bitmap directory (offset 0x%" PRIx64 ", %"
                PRIu64 " bytes) is unaligned or too large",
                dir_offset, dir_size);
    return 0;
  }
  check_inc_refs (c, "bitmap directory", dir_offset, dir_size);
  if (((dir_offset + dir_size - 1) >> c->cluster_bits) >= c->nb_clusters)
    return 0;
  dir = malloc (dir_size ? dir_size : 1);
  if (dir == NULL) {
    errno = ENOMEM;
    return -1;
  }
  if (check_read_at (c, "bitmap directory", dir, dir_size,
                     dir_offset) == -1)
    goto out;

  for (pos = 0, i = 0; i < nb_bitmaps; i++) {
    uint64_t table_offset, j;
    uint32_t table_size, extra;
    uint16_t name_len;

    if (pos + 24 > dir_size) {
      CORRUPTION ("ERROR: bitmap %" PRIu32 " runs past the bitmap "
                  "directory", i);
      break;
    }
    table_offset = load_be64 (dir + pos);
    table_size = load_be32 (dir + pos + 8);
    name_len = load_be16 (dir + pos + 18);
    extra = load_be32 (dir + pos + 20);
    pos += (24 + (uint64_t) extra + name_len + 7) & ~UINT64_C (7);

    if (table_offset & (c->cluster_size - 1) ||
        (uint64_t) table_size * 8 > (UINT64_C (64) << 20)) {
      CORRUPTION ("ERROR: bitmap %" PRIu32 ": table at offset 0x%" PRIx64
                  " (%" PRIu32 " entries) is unaligned or too large",
                  i, table_offset, table_size);
      continue;
    }
    check_inc_refs (c, "bitmap table", table_offset,
                    (uint64_t) table_size * 8);
    if (table_size == 0 ||
        ((table_offset + table_size * UINT64_C (8) - 1) >> c->cluster_bits)
        >= c->nb_clusters)
      continue;
    free (table);
    table = malloc ((uint64_t) table_size * 8);
    if (table == NULL) {
      free (dir);
      errno = ENOMEM;
      return -1;
    }
    if (check_read_at (c, "bitmap table", table, (uint64_t) table_size * 8,
                       table_offset) == -1)
      continue;
    for (j = 0; j < table_size; j++) {
      uint64_t data = load_be64 (table + j * 8) & QCOW2_L2E_OFFSET_MASK;
      if (data == 0)
        continue;
      if (data & (c->cluster_size - 1))
        CORRUPTION ("ERROR: bitmap %" PRIu32 ": data cluster offset 0x%"
                    PRIx64 " is not cluster aligned", i, data);
      else
        check_inc_refs (c, "bitmap data cluster", data, c->cluster_size);
    }
  }
 out:
  free (dir);
  free (table);
  return 0;
}
