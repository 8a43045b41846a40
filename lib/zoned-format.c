/* The zoned format extension on disk; see zoned-format.h. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "be.h"
#include "zoned-format.h"

#define REFUSE(...)                             \
  do {                                          \
    snprintf (why, why_len, __VA_ARGS__);       \
    errno = EINVAL;                             \
    return -1;                                  \
  } while (0)

int
zoned_ext_parse (const uint8_t *p, uint32_t len, struct zq_zone_geometry *g,
                 char *why, size_t why_len)
{
  memset (g, 0, sizeof *g);
  if (len < ZONED_EXT_MIN_LENGTH)
    REFUSE ("zoned extension is %" PRIu32 " bytes, shorter than %d",
            len, ZONED_EXT_MIN_LENGTH);
  g->zone_model = p[0];
  if (p[1] || p[2] || p[3])
    REFUSE ("zoned extension reserved bytes 1-3 are not zero");
  g->zone_size = load_be64 (p + 4);
  g->zone_capacity = load_be64 (p + 12);
  g->conventional_zones = load_be32 (p + 20);
  g->nr_zones = load_be32 (p + 24);
  g->max_active_zones = load_be32 (p + 28);
  g->max_open_zones = load_be32 (p + 32);
  g->max_append_bytes = load_be32 (p + 36);
  g->zonedmeta_size = load_be64 (p + 40);
  g->zonedmeta_offset = load_be64 (p + 48);
  return 0;
}

void
zoned_ext_serialize (const struct zq_zone_geometry *g,
                     uint8_t p[ZONED_EXT_MIN_LENGTH])
{
  memset (p, 0, ZONED_EXT_MIN_LENGTH);
  p[0] = g->zone_model;
  store_be64 (p + 4, g->zone_size);
  store_be64 (p + 12, g->zone_capacity);
  store_be32 (p + 20, g->conventional_zones);
  store_be32 (p + 24, g->nr_zones);
  store_be32 (p + 28, g->max_active_zones);
  store_be32 (p + 32, g->max_open_zones);
  store_be32 (p + 36, g->max_append_bytes);
  store_be64 (p + 40, g->zonedmeta_size);
  store_be64 (p + 48, g->zonedmeta_offset);
}

int
zone_geometry_check (const struct zq_zone_geometry *g, uint64_t virtual_size,
                     uint32_t cluster_size, bool allow_short_last_zone,
                     char *why, size_t why_len)
{
  uint64_t nr_zones, sequential;

  if (g->zone_model != ZONE_MODEL_HOST_MANAGED)
    REFUSE ("zone_model %u is not supported (1 = host-managed)",
            g->zone_model);
  if (g->zone_size < 512 || (g->zone_size & (g->zone_size - 1)) != 0)
    REFUSE ("zone_size %" PRIu64 " is not a power of two of at least 512",
            g->zone_size);
  if (g->zone_capacity == 0 || g->zone_capacity > g->zone_size ||
      g->zone_capacity % 512 != 0)
    REFUSE ("zone_capacity %" PRIu64 " must be a non-zero multiple of 512 "
            "no larger than zone_size %" PRIu64,
            g->zone_capacity, g->zone_size);
  if (virtual_size == 0 || virtual_size % 512 != 0)
    REFUSE ("virtual size %" PRIu64 " must be a non-zero multiple of 512 "
            "for a zoned image", virtual_size);
  if (virtual_size % g->zone_size != 0 && !allow_short_last_zone)
    REFUSE ("virtual size %" PRIu64 " is not a multiple of zone_size %"
            PRIu64 " (the last zone would be shorter)",
            virtual_size, g->zone_size);
  nr_zones = (virtual_size + g->zone_size - 1) / g->zone_size;
  /* Bit 59 of an entry and the offset bits below it must hold the end
   * of the last zone; QEMU's series keeps the count below 2^29 too.
   */
  if (nr_zones > ZONED_MAX_NR_ZONES)
    REFUSE ("virtual size %" PRIu64 " / zone_size %" PRIu64 " makes %"
            PRIu64 " zones, more than the limit of %" PRIu32 " (2^29 - 1)",
            virtual_size, g->zone_size, nr_zones, ZONED_MAX_NR_ZONES);
  if (g->nr_zones != nr_zones)
    REFUSE ("nr_zones %" PRIu32 " does not match the virtual size %" PRIu64
            " / zone_size %" PRIu64 " (expected %" PRIu64 ")",
            g->nr_zones, virtual_size, g->zone_size, nr_zones);
  if (g->conventional_zones >= g->nr_zones)
    REFUSE ("conventional_zones %" PRIu32 " must be less than nr_zones %"
            PRIu32, g->conventional_zones, g->nr_zones);
  sequential = g->nr_zones - g->conventional_zones;
  if (g->max_active_zones > sequential)
    REFUSE ("max_active_zones %" PRIu32 " is larger than the %" PRIu64
            " sequential zones", g->max_active_zones, sequential);
  if (g->max_open_zones > sequential)
    REFUSE ("max_open_zones %" PRIu32 " is larger than the %" PRIu64
            " sequential zones", g->max_open_zones, sequential);
  if (g->max_open_zones && g->max_active_zones &&
      g->max_open_zones > g->max_active_zones)
    REFUSE ("max_open_zones %" PRIu32 " is larger than max_active_zones %"
            PRIu32, g->max_open_zones, g->max_active_zones);
  if (g->max_append_bytes % 512 != 0)
    REFUSE ("max_append_bytes %" PRIu32 " is not a multiple of 512",
            g->max_append_bytes);
  if (g->zonedmeta_size < (uint64_t) g->nr_zones * 8)
    REFUSE ("zonedmeta_size %" PRIu64 " is smaller than 8 x nr_zones (%"
            PRIu64 ")", g->zonedmeta_size, (uint64_t) g->nr_zones * 8);
  if (g->zonedmeta_offset == 0 ||
      g->zonedmeta_offset % cluster_size != 0)
    REFUSE ("zonedmeta_offset 0x%" PRIx64 " is not a non-zero multiple of "
            "the cluster size", g->zonedmeta_offset);
  return 0;
}

unsigned
zone_geometry_qemu_notes (const struct zq_zone_geometry *g,
                          char notes[][ZONE_QEMU_NOTE_LEN])
{
  unsigned n = 0;

  if ((uint64_t) g->max_append_bytes + 512 >= g->zone_capacity)
    snprintf (notes[n++], ZONE_QEMU_NOTE_LEN,
              "max_append_bytes %" PRIu32 " + 512 is not below zone_capacity "
              "%" PRIu64 ": QEMU's zoned qcow2 series refuses to open such "
              "an image", g->max_append_bytes, g->zone_capacity);
  if (g->max_open_zones && !g->max_active_zones)
    snprintf (notes[n++], ZONE_QEMU_NOTE_LEN,
              "max_open_zones %" PRIu32 " with max_active_zones 0: zqcow2 "
              "limits open zones to %" PRIu32 ", QEMU's zoned qcow2 series "
              "reads this as no open limit", g->max_open_zones,
              g->max_open_zones);
  return n;
}

void
wp_order_vote (struct wp_order_vote *vote, const struct zq_zone_geometry *g,
               uint64_t virtual_size, uint32_t i, uint64_t entry)
{
  uint64_t swapped = __builtin_bswap64 (entry), wp;
  enum zq_zone_cond cond;
  char why[256];

  if (swapped == entry)
    return;
  vote->differing++;
  if (!wp_entry_decode (g, virtual_size, i, entry, &wp, &cond,
                        why, sizeof why) &&
      wp_entry_decode (g, virtual_size, i, swapped, &wp, &cond,
                       why, sizeof why))
    vote->little_endian_only++;
}

bool
wp_order_is_little_endian (const struct wp_order_vote *vote)
{
  return vote->differing > 0 &&
         vote->little_endian_only == vote->differing;
}

void
zone_bounds (const struct zq_zone_geometry *g, uint64_t virtual_size,
             uint32_t i, uint64_t *start, uint64_t *length,
             uint64_t *capacity)
{
  *start = (uint64_t) i * g->zone_size;
  *length = virtual_size - *start < g->zone_size ?
            virtual_size - *start : g->zone_size;
  *capacity = g->zone_capacity < *length ? g->zone_capacity : *length;
}

bool
wp_entry_decode (const struct zq_zone_geometry *g, uint64_t virtual_size,
                 uint32_t i, uint64_t entry, uint64_t *wp,
                 enum zq_zone_cond *cond, char *why, size_t why_len)
{
  uint64_t start, length, capacity, offset = entry & WP_OFFSET_MASK;
  bool conventional = i < g->conventional_zones;

  zone_bounds (g, virtual_size, i, &start, &length, &capacity);
  if (entry & WP_RESERVED_MASK) {
    snprintf (why, why_len, "zone %" PRIu32 ": write pointer entry 0x%016"
              PRIx64 " has reserved bits 60-63 set", i, entry);
    return false;
  }
  if (conventional) {
    if (!(entry & WP_CONVENTIONAL) || offset != start) {
      snprintf (why, why_len, "zone %" PRIu32 ": conventional zone entry "
                "0x%016" PRIx64 " should be 0x%016" PRIx64, i, entry,
                start | WP_CONVENTIONAL);
      return false;
    }
    *wp = start;
    *cond = ZQ_ZONE_COND_NOT_WP;
    return true;
  }
  if (entry & WP_CONVENTIONAL) {
    snprintf (why, why_len, "zone %" PRIu32 ": sequential zone entry 0x%016"
              PRIx64 " has the conventional bit 59 set", i, entry);
    return false;
  }
  if (offset < start || offset > start + length) {
    snprintf (why, why_len, "zone %" PRIu32 ": write pointer 0x%" PRIx64
              " is outside the zone [0x%" PRIx64 ", 0x%" PRIx64 "]",
              i, offset, start, start + length);
    return false;
  }
  if (offset == start)
    *cond = ZQ_ZONE_COND_EMPTY;
  else if (offset < start + capacity)
    *cond = ZQ_ZONE_COND_CLOSED;
  else
    *cond = ZQ_ZONE_COND_FULL;
  *wp = offset;
  return true;
}

uint64_t
wp_entry_encode (const struct zq_zone_geometry *g, uint32_t i, uint64_t wp)
{
  if (i < g->conventional_zones)
    return ((uint64_t) i * g->zone_size) | WP_CONVENTIONAL;
  return wp;
}
