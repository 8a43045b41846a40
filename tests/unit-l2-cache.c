/* The metadata cache behind L2 tables and refcount blocks: hits, LRU
 * eviction, write-back of dirty tables, and the dependency that writes
 * one cache before the other.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "unit.h"

#define TABLE 512

static struct zq_image img;

static uint8_t
byte_in_file (uint64_t offset)
{
  uint8_t b = 0xee;
  CHECK (pread (img.fd, &b, 1, offset) == 1);
  return b;
}

int
main (void)
{
  char path[] = "/tmp/unit-l2-cache-XXXXXX";
  struct metacache *l2, *refblocks;
  struct metacache_stats st;
  uint8_t *t, *t0;
  uint8_t fill[TABLE];
  int i;

  img.fd = mkstemp (path);
  CHECK (img.fd >= 0);
  unlink (path);
  img.filename = path;

  /* Tables 0..7 in the file hold their own index in every byte. */
  for (i = 0; i < 8; i++) {
    memset (fill, i, sizeof fill);
    CHECK (pwrite (img.fd, fill, TABLE, i * TABLE) == TABLE);
  }

  l2 = metacache_new (&img, "L2 table", 3, TABLE);
  refblocks = metacache_new (&img, "refcount block", 2, TABLE);
  CHECK (l2 != NULL && refblocks != NULL);
  metacache_set_dependency (l2, refblocks);

  /* Misses read the file; a second get hits. */
  CHECK (metacache_get (l2, 1 * TABLE, &t) == 0 && t[0] == 1);
  CHECK (metacache_get (l2, 2 * TABLE, &t) == 0 && t[100] == 2);
  CHECK (metacache_get (l2, 1 * TABLE, &t) == 0 && t[0] == 1);
  metacache_get_stats (l2, &st);
  CHECK (st.hits == 1 && st.misses == 2 && st.evictions == 0);

  /* Fill the third slot, then a fourth table evicts the least recently
   * used one: table 2 (table 1 was used after it).
   */
  CHECK (metacache_get (l2, 3 * TABLE, &t) == 0);
  CHECK (metacache_get (l2, 4 * TABLE, &t) == 0 && t[0] == 4);
  metacache_get_stats (l2, &st);
  CHECK (st.evictions == 1);
  CHECK (metacache_get (l2, 1 * TABLE, &t) == 0);
  metacache_get_stats (l2, &st);
  CHECK (st.hits == 2);         /* table 1 survived */

  /* A dirty table is written back when evicted, and not before. */
  CHECK (metacache_get (l2, 1 * TABLE, &t0) == 0);
  t0[0] = 0x55;
  metacache_mark_dirty (l2, t0);
  CHECK (byte_in_file (1 * TABLE) == 1);
  CHECK (metacache_has_dirty (l2));

  /* The dependency: a dirty refcount block reaches the file before any
   * L2 table does.
   */
  CHECK (metacache_get (refblocks, 6 * TABLE, &t) == 0);
  t[0] = 0x66;
  metacache_mark_dirty (refblocks, t);
  /* Slots now hold 1 (dirty, most recent), 4, 3: three more tables push
   * table 1 out last.
   */
  CHECK (metacache_get (l2, 5 * TABLE, &t) == 0);
  CHECK (metacache_get (l2, 7 * TABLE, &t) == 0);
  CHECK (byte_in_file (1 * TABLE) == 1);
  CHECK (byte_in_file (6 * TABLE) == 6);
  CHECK (metacache_get (l2, 2 * TABLE, &t) == 0);   /* evicts table 1 */
  CHECK (byte_in_file (1 * TABLE) == 0x55);
  CHECK (byte_in_file (6 * TABLE) == 0x66);
  CHECK (!metacache_has_dirty (refblocks));
  CHECK (!metacache_has_dirty (l2));

  /* A new table is zero-filled without reading, and dirty. */
  CHECK (metacache_get_new (l2, 0, &t) == 0 && t[0] == 0 && t[511] == 0);
  CHECK (metacache_has_dirty (l2));
  CHECK (metacache_writeback (l2) == 0);
  CHECK (byte_in_file (0) == 0);

  /* Forgetting drops a dirty table without writing it. */
  CHECK (metacache_get (l2, 3 * TABLE, &t) == 0);
  t[0] = 0x77;
  metacache_mark_dirty (l2, t);
  metacache_forget (l2, 3 * TABLE);
  CHECK (!metacache_has_dirty (l2));
  CHECK (metacache_writeback (l2) == 0);
  CHECK (byte_in_file (3 * TABLE) == 3);

  metacache_free (l2);
  metacache_free (refblocks);
  close (img.fd);
  UNIT_EXIT ();
}
