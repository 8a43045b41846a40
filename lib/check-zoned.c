/* zq_check's look at the zoned extension: the zoned format bit and the
 * extension must agree, the geometry must be valid, the write-pointer
 * table's clusters are references and each of its entries must decode
 * to a valid zone condition and write pointer.  Problems are counted as
 * write-pointer errors, apart from qemu-img check's corruptions and
 * leaks, since qemu knows nothing of zones.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

#include "be.h"
#include "check-internal.h"
#include "qcow2-format.h"
#include "zoned-format.h"

/* Reads entries [first, first + n) of the write-pointer table. */
static int
read_wp_entries (struct checker *c, const struct zq_zone_geometry *g,
                 uint8_t *buf, uint32_t first, uint32_t n)
{
  return check_read_at (c, "write-pointer table", buf, (size_t) n * 8,
                        g->zonedmeta_offset + (uint64_t) first * 8);
}

#define WP_CHUNK 8192           /* entries read at a time */

/* The zoned extension, its geometry and every write-pointer entry. */
int
check_zoned (struct checker *c)
{
  const struct qcow2_header *h = &c->f.h;
  bool bit = (h->incompatible_features & QCOW2_INCOMPAT_ZONED) != 0;
  struct zq_zone_geometry g;
  struct wp_order_vote vote = { 0 };
  char notes[ZONE_QEMU_NOTES_MAX][ZONE_QEMU_NOTE_LEN];
  uint64_t wp;
  enum zq_zone_cond cond;
  uint8_t *buf;
  uint32_t i, n, k;
  char why[512];
  bool little_endian;

  if (!bit && !h->has_zoned)
    return 0;
  if (bit && !h->has_zoned) {
    WP_ERROR ("ERROR: incompatible bit 5 (zoned format) is set but the "
              "image has no zoned extension (magic 0x%08x)",
              QCOW2_EXT_ZONED);
    return 0;
  }
  if (h->version < 3)
    WP_ERROR ("ERROR: a version %" PRIu32 " image has the zoned extension; "
              "zoned images are version 3 only", h->version);
  else if (!bit)
    WP_ERROR ("%s", "ERROR: the image has the zoned extension but "
              "incompatible bit 5 (zoned format) is clear");
  if (zoned_ext_parse (h->zoned_payload, h->zoned_payload_len, &g,
                       why, sizeof why) == -1) {
    WP_ERROR ("ERROR: %s", why);
    return 0;
  }

  /* The table's clusters are metadata, whatever the rest says. */
  if (g.zonedmeta_offset != 0 &&
      (g.zonedmeta_offset & (c->cluster_size - 1)) == 0)
    check_inc_refs (c, "write-pointer table", g.zonedmeta_offset,
                    g.zonedmeta_size);

  if (zone_geometry_check (&g, h->size, c->cluster_size, true,
                           why, sizeof why) == -1) {
    WP_ERROR ("ERROR: zoned extension: %s; write pointers not checked", why);
    return 0;
  }
  if (((g.zonedmeta_offset + g.zonedmeta_size - 1) >> c->cluster_bits) >=
      c->nb_clusters)
    return 0;                   /* reported by check_inc_refs */
  k = zone_geometry_qemu_notes (&g, notes);
  for (i = 0; i < k; i++)
    zq_warning ("%s: %s", c->f.filename, notes[i]);

  buf = malloc (WP_CHUNK * 8);
  if (buf == NULL) {
    errno = ENOMEM;
    return -1;
  }

  /* First pass: the byte order, decided as the engine decides it.  The
   * engine reads a little-endian table (and rewrites it), so that is
   * worth a warning, not an error.
   */
  for (i = 0; i < g.nr_zones; i += n) {
    n = g.nr_zones - i < WP_CHUNK ? g.nr_zones - i : WP_CHUNK;
    if (read_wp_entries (c, &g, buf, i, n) == -1)
      goto out;
    for (k = 0; k < n; k++)
      wp_order_vote (&vote, &g, h->size, i + k, load_be64 (buf + k * 8));
  }
  little_endian = wp_order_is_little_endian (&vote);
  if (little_endian)
    zq_warning ("%s: the write-pointer table is in little-endian byte "
                "order (as QEMU's zoned series writes it on x86); zqcow2 "
                "reads it and rewrites it big-endian on the first write",
                c->f.filename);

  for (i = 0; i < g.nr_zones; i += n) {
    n = g.nr_zones - i < WP_CHUNK ? g.nr_zones - i : WP_CHUNK;
    if (read_wp_entries (c, &g, buf, i, n) == -1)
      goto out;
    for (k = 0; k < n; k++) {
      uint64_t entry = load_be64 (buf + k * 8);

      if (little_endian)
        entry = __builtin_bswap64 (entry);
      if (!wp_entry_decode (&g, h->size, i + k, entry, &wp, &cond,
                            why, sizeof why))
        WP_ERROR ("ERROR: %s", why);
    }
  }
 out:
  free (buf);
  return 0;
}
