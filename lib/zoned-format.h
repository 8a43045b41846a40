/* The zoned format extension on disk (zoned-qcow2-format.md): its payload,
 * the geometry rules, and write-pointer table entries.  Pure functions,
 * shared by opening, creating and checking images.
 */
#ifndef ZQ_ZONED_FORMAT_H
#define ZQ_ZONED_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zqcow2.h"

#define ZONED_EXT_MIN_LENGTH 56
#define ZONE_MODEL_HOST_MANAGED 1
#define ZONED_MAX_NR_ZONES ((UINT32_C (1) << 29) - 1)

/* Write-pointer table entry bits. */
#define WP_CONVENTIONAL  (UINT64_C (1) << 59)
#define WP_OFFSET_MASK   ((UINT64_C (1) << 59) - 1)
#define WP_RESERVED_MASK (~((UINT64_C (1) << 60) - 1))

/* Parses the extension payload (len bytes).  On failure returns -1 with
 * errno EINVAL and the reason in why.
 */
int zoned_ext_parse (const uint8_t *payload, uint32_t len,
                     struct zq_zone_geometry *g, char *why, size_t why_len);

/* Writes the 56-byte payload. */
void zoned_ext_serialize (const struct zq_zone_geometry *g,
                          uint8_t payload[ZONED_EXT_MIN_LENGTH]);

/* The geometry rules, checked together, for create and open alike.
 * A virtual size that is not a multiple of zone_size (a short last zone)
 * passes only with allow_short_last_zone.
 */
int zone_geometry_check (const struct zq_zone_geometry *g,
                         uint64_t virtual_size, uint32_t cluster_size,
                         bool allow_short_last_zone,
                         char *why, size_t why_len);

/* Where QEMU's zoned series refuses a geometry that zone_geometry_check
 * accepts, or reads it differently: one sentence per difference in
 * notes[0 ..], returning how many.  Create writes no such geometry;
 * open, info and check warn.
 */
#define ZONE_QEMU_NOTES_MAX 2
#define ZONE_QEMU_NOTE_LEN 256
unsigned zone_geometry_qemu_notes (const struct zq_zone_geometry *g,
                                   char notes[][ZONE_QEMU_NOTE_LEN]);

/* The byte order of a write-pointer table, decided entry by entry (the
 * table is read in pieces by check).  Only entries whose big-endian and
 * little-endian readings differ count: the table is little-endian when
 * at least one differs and every one that differs is valid only as
 * little-endian.  Start with a zeroed vote; entry as read big-endian.
 */
struct wp_order_vote {
  uint64_t differing;
  uint64_t little_endian_only;
};
void wp_order_vote (struct wp_order_vote *vote,
                    const struct zq_zone_geometry *g, uint64_t virtual_size,
                    uint32_t i, uint64_t entry);
bool wp_order_is_little_endian (const struct wp_order_vote *vote);

/* Start, length and capacity of zone i. */
void zone_bounds (const struct zq_zone_geometry *g, uint64_t virtual_size,
                  uint32_t i, uint64_t *start, uint64_t *length,
                  uint64_t *capacity);

/* Decodes a write-pointer table entry for zone i into its write pointer
 * and condition at open.  Returns false when the entry is invalid for
 * that zone (reason in why).
 */
bool wp_entry_decode (const struct zq_zone_geometry *g,
                      uint64_t virtual_size, uint32_t i, uint64_t entry,
                      uint64_t *wp, enum zq_zone_cond *cond,
                      char *why, size_t why_len);

/* The entry that records write pointer wp for zone i. */
uint64_t wp_entry_encode (const struct zq_zone_geometry *g, uint32_t i,
                          uint64_t wp);

#endif /* ZQ_ZONED_FORMAT_H */
