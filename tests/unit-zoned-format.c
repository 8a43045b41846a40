/* The zoned extension: payload round trip, the geometry rules shared by
 * create and open, and write-pointer entries.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "zoned-format.h"
#include "unit.h"

#define MiB (UINT64_C (1) << 20)

static char why[512];

/* 16 zones of 64 MiB, 2 conventional, limits 8 open / 12 active. */
static struct zq_zone_geometry
good (void)
{
  struct zq_zone_geometry g = {
    .zone_model = 1, .zone_size = 64 * MiB, .zone_capacity = 64 * MiB,
    .conventional_zones = 2, .nr_zones = 16, .max_active_zones = 12,
    .max_open_zones = 8, .max_append_bytes = 65536,
    .zonedmeta_size = 65536, .zonedmeta_offset = 4 * 65536,
  };
  return g;
}

static bool
refused (const struct zq_zone_geometry *g, uint64_t size, bool allow_short,
         const char *word)
{
  why[0] = '\0';
  if (zone_geometry_check (g, size, 65536, allow_short, why, sizeof why) == 0)
    return false;
  if (strstr (why, word) == NULL) {
    fprintf (stderr, "reason \"%s\" lacks \"%s\"\n", why, word);
    return false;
  }
  return errno == EINVAL;
}

int
main (void)
{
  struct zq_zone_geometry g = good (), back;
  uint8_t payload[ZONED_EXT_MIN_LENGTH];
  uint64_t size = 1024 * MiB, wp;
  enum zq_zone_cond cond;

  CHECK (zone_geometry_check (&g, size, 65536, false, why, sizeof why) == 0);

  /* Serialise and parse back; fields land at the spec's byte offsets. */
  zoned_ext_serialize (&g, payload);
  CHECK (payload[0] == 1 && payload[11] == 0 && payload[10] == 0x00);
  CHECK (payload[4 + 4] == 0x04);       /* 64 MiB = 0x04000000, bytes 4-11 */
  CHECK (payload[27] == 16);            /* nr_zones at 24-27 */
  CHECK (zoned_ext_parse (payload, sizeof payload, &back, why,
                          sizeof why) == 0);
  CHECK (back.zone_model == g.zone_model && back.zone_size == g.zone_size &&
         back.zone_capacity == g.zone_capacity &&
         back.conventional_zones == g.conventional_zones &&
         back.nr_zones == g.nr_zones &&
         back.max_active_zones == g.max_active_zones &&
         back.max_open_zones == g.max_open_zones &&
         back.max_append_bytes == g.max_append_bytes &&
         back.zonedmeta_size == g.zonedmeta_size &&
         back.zonedmeta_offset == g.zonedmeta_offset);
  CHECK (zoned_ext_parse (payload, 55, &back, why, sizeof why) == -1);
  payload[2] = 1;
  CHECK (zoned_ext_parse (payload, sizeof payload, &back, why,
                          sizeof why) == -1);

  g = good (); g.zone_model = 2;
  CHECK (refused (&g, size, false, "zone_model 2"));
  g = good (); g.zone_size = 48 * MiB;
  CHECK (refused (&g, size, false, "power of two"));
  /* Zones smaller than a cluster are valid, down to 512 bytes. */
  g = good (); g.zone_size = 4096; g.zone_capacity = 4096;
  g.nr_zones = size / 4096; g.zonedmeta_size = (uint64_t) g.nr_zones * 8;
  CHECK (zone_geometry_check (&g, size, 65536, false, why, sizeof why) == 0);
  g.zone_size = 512; g.zone_capacity = 512; g.nr_zones = 1024;
  g.zonedmeta_size = 8192;
  CHECK (zone_geometry_check (&g, 512 * 1024, 65536, false, why,
                              sizeof why) == 0);
  g.zone_size = 256; g.zone_capacity = 256; g.nr_zones = 2048;
  CHECK (refused (&g, 512 * 1024, false, "power of two of at least 512"));
  /* At most 2^29 - 1 zones; the limit is named. */
  g = good (); g.zone_size = 512; g.zone_capacity = 512;
  g.conventional_zones = 0; g.nr_zones = ZONED_MAX_NR_ZONES;
  g.zonedmeta_size = (uint64_t) g.nr_zones * 8;
  CHECK (zone_geometry_check (&g, (uint64_t) ZONED_MAX_NR_ZONES * 512, 65536,
                              false, why, sizeof why) == 0);
  CHECK (refused (&g, (uint64_t) ZONED_MAX_NR_ZONES * 512 + 512, false,
                  "more than the limit of 536870911"));
  g = good (); g.zone_capacity = 65 * MiB;
  CHECK (refused (&g, size, false, "zone_capacity"));
  g = good (); g.zone_capacity = 1000;
  CHECK (refused (&g, size, false, "zone_capacity 1000"));
  g = good (); g.nr_zones = 15;
  CHECK (refused (&g, size, false, "nr_zones 15"));
  g = good (); g.conventional_zones = 16;
  CHECK (refused (&g, size, false, "conventional_zones 16"));
  g = good (); g.max_open_zones = 13;
  CHECK (refused (&g, size, false, "max_open_zones 13"));
  g = good (); g.max_active_zones = 15; g.max_open_zones = 0;
  CHECK (refused (&g, size, false, "max_active_zones 15"));
  g = good (); g.max_append_bytes = 1000;
  CHECK (refused (&g, size, false, "max_append_bytes"));
  g = good (); g.zonedmeta_size = 64;
  CHECK (refused (&g, size, false, "zonedmeta_size"));
  g = good (); g.zonedmeta_offset = 4096;
  CHECK (refused (&g, size, false, "zonedmeta_offset"));

  /* A short last zone: refused unless allowed; its capacity is clipped. */
  g = good (); g.nr_zones = 17;
  CHECK (refused (&g, size + 32 * MiB, false, "not a multiple"));
  CHECK (zone_geometry_check (&g, size + 32 * MiB, 65536, true, why,
                              sizeof why) == 0);
  {
    uint64_t start, length, capacity;
    zone_bounds (&g, size + 32 * MiB, 16, &start, &length, &capacity);
    CHECK (start == 1024 * MiB && length == 32 * MiB &&
           capacity == 32 * MiB);
  }

  /* Write-pointer entries. */
  g = good ();
  CHECK (wp_entry_decode (&g, size, 0, WP_CONVENTIONAL, &wp, &cond,
                          why, sizeof why) && cond == ZQ_ZONE_COND_NOT_WP);
  CHECK (!wp_entry_decode (&g, size, 0, 0, &wp, &cond, why, sizeof why));
  CHECK (wp_entry_decode (&g, size, 2, 128 * MiB, &wp, &cond, why,
                          sizeof why) && cond == ZQ_ZONE_COND_EMPTY);
  CHECK (wp_entry_decode (&g, size, 2, 128 * MiB + 4096, &wp, &cond, why,
                          sizeof why) && cond == ZQ_ZONE_COND_CLOSED &&
         wp == 128 * MiB + 4096);
  CHECK (wp_entry_decode (&g, size, 2, 192 * MiB, &wp, &cond, why,
                          sizeof why) && cond == ZQ_ZONE_COND_FULL);
  CHECK (!wp_entry_decode (&g, size, 2, 192 * MiB + 512, &wp, &cond, why,
                           sizeof why));
  CHECK (!wp_entry_decode (&g, size, 2, 64 * MiB, &wp, &cond, why,
                           sizeof why));
  CHECK (!wp_entry_decode (&g, size, 2, (128 * MiB) | WP_CONVENTIONAL,
                           &wp, &cond, why, sizeof why));
  CHECK (!wp_entry_decode (&g, size, 2, (128 * MiB) | (UINT64_C (1) << 62),
                           &wp, &cond, why, sizeof why));
  CHECK (strstr (why, "reserved") != NULL);
  CHECK (wp_entry_encode (&g, 1, 0) == ((64 * MiB) | WP_CONVENTIONAL));
  CHECK (wp_entry_encode (&g, 3, 200 * MiB) == 200 * MiB);

  /* Capacity below the zone size: FULL from start + capacity on. */
  g = good (); g.zone_capacity = 48 * MiB;
  CHECK (wp_entry_decode (&g, size, 2, 176 * MiB, &wp, &cond, why,
                          sizeof why) && cond == ZQ_ZONE_COND_FULL);
  CHECK (wp_entry_decode (&g, size, 2, 175 * MiB, &wp, &cond, why,
                          sizeof why) && cond == ZQ_ZONE_COND_CLOSED);

  /* Where QEMU's series differs: max_append_bytes + 512 must stay below
   * the capacity; an open limit without an active limit.
   */
  {
    char notes[ZONE_QEMU_NOTES_MAX][ZONE_QEMU_NOTE_LEN];

    g = good ();
    CHECK (zone_geometry_qemu_notes (&g, notes) == 0);
    g.zone_capacity = 65536 + 1024; g.max_append_bytes = 65536;
    CHECK (zone_geometry_qemu_notes (&g, notes) == 0);
    g.zone_capacity = 65536 + 512;
    CHECK (zone_geometry_qemu_notes (&g, notes) == 1 &&
           strstr (notes[0], "max_append_bytes 65536") != NULL);
    g = good (); g.max_active_zones = 0;
    CHECK (zone_geometry_qemu_notes (&g, notes) == 1 &&
           strstr (notes[0], "no open limit") != NULL);
    g.max_append_bytes = 64 * MiB;
    CHECK (zone_geometry_qemu_notes (&g, notes) == 2);
  }

  /* Byte order: only entries whose two readings differ decide. */
  {
    struct wp_order_vote vote = { 0 };
    uint64_t le_entries[4] = { 0, 0, 0, 0 };
    unsigned i;

    g = good (); g.conventional_zones = 0; g.nr_zones = 4;
    size = 4 * 64 * MiB;
    /* Zone 0 empty (0 reads the same both ways), zone 1 partly written,
     * zone 2 full, zone 3 empty: little-endian.
     */
    le_entries[1] = __builtin_bswap64 (64 * MiB + 4096);
    le_entries[2] = __builtin_bswap64 (192 * MiB);
    le_entries[3] = __builtin_bswap64 (192 * MiB);
    for (i = 0; i < 4; i++)
      wp_order_vote (&vote, &g, size, i, le_entries[i]);
    CHECK (vote.differing == 3 && vote.little_endian_only == 3);
    CHECK (wp_order_is_little_endian (&vote));
    /* The same in big-endian order. */
    memset (&vote, 0, sizeof vote);
    for (i = 0; i < 4; i++)
      wp_order_vote (&vote, &g, size, i, __builtin_bswap64 (le_entries[i]));
    CHECK (!wp_order_is_little_endian (&vote));
    /* Only zone 0, which does not differ: big-endian. */
    memset (&vote, 0, sizeof vote);
    wp_order_vote (&vote, &g, size, 0, 0);
    CHECK (vote.differing == 0 && !wp_order_is_little_endian (&vote));
    /* One differing entry valid in neither order: not little-endian. */
    memset (&vote, 0, sizeof vote);
    for (i = 0; i < 3; i++)
      wp_order_vote (&vote, &g, size, i, le_entries[i]);
    wp_order_vote (&vote, &g, size, 3, 1);
    CHECK (!wp_order_is_little_endian (&vote));
  }

  UNIT_EXIT ();
}
