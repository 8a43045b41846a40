/* Refcount block entry arithmetic for every refcount width. */
#include <config.h>

#include <stdint.h>
#include <string.h>

#include "refcount.h"
#include "unit.h"

int
main (void)
{
  uint8_t block[512];
  unsigned order;

  /* Each width: set every entry to a distinct value, read all back. */
  for (order = 0; order <= 6; order++) {
    unsigned bits = 1u << order;
    uint64_t max = bits == 64 ? UINT64_MAX : (UINT64_C (1) << bits) - 1;
    uint64_t entries = sizeof block * 8 / bits, i;
    int bad = 0;

    memset (block, 0, sizeof block);
    for (i = 0; i < entries; i++)
      refblock_entry_set (block, order, i, (i * 7 + 3) & max);
    for (i = 0; i < entries; i++)
      bad += refblock_entry_get (block, order, i) != ((i * 7 + 3) & max);
    CHECK (bad == 0);

    /* The largest value fits and leaves the neighbours alone. */
    memset (block, 0, sizeof block);
    refblock_entry_set (block, order, 5, max);
    CHECK (refblock_entry_get (block, order, 5) == max);
    CHECK (refblock_entry_get (block, order, 4) == 0);
    CHECK (refblock_entry_get (block, order, 6) == 0);
    /* Overwriting with a smaller value clears the old bits. */
    refblock_entry_set (block, order, 5, 1);
    CHECK (refblock_entry_get (block, order, 5) == 1);
  }

  /* The on-disk layout: sub-byte entries start at the least significant
   * bit, wider entries are big-endian.
   */
  memset (block, 0, sizeof block);
  refblock_entry_set (block, 0, 0, 1);
  refblock_entry_set (block, 0, 9, 1);
  CHECK (block[0] == 0x01 && block[1] == 0x02);

  memset (block, 0, sizeof block);
  refblock_entry_set (block, 2, 1, 0xa);
  CHECK (block[0] == 0xa0);

  memset (block, 0, sizeof block);
  refblock_entry_set (block, 4, 1, 0x1234);
  CHECK (block[2] == 0x12 && block[3] == 0x34);

  memset (block, 0, sizeof block);
  refblock_entry_set (block, 6, 0, UINT64_C (0x0102030405060708));
  CHECK (block[0] == 0x01 && block[7] == 0x08);

  UNIT_EXIT ();
}
