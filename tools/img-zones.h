/* zqcow2-img zones: the report's printing, shared by the image file and
 * the NBD export (img-zones-nbd.c).
 */
#ifndef ZQCOW2_IMG_ZONES_H
#define ZQCOW2_IMG_ZONES_H

#include <stdbool.h>
#include <stdint.h>

#include "zqcow2.h"

/* The report, --output=human or json: begin, each zone (first: the
 * first one printed), end.
 */
void zones_print_begin (bool json);
void zones_print_zone (uint32_t number, const struct zq_zone *z, bool json,
                       bool first);
void zones_print_end (bool json);

/* Whether the operand is an NBD URI (nbd://, nbds://, nbd+unix://, ...)
 * rather than a file name.
 */
bool is_nbd_uri (const char *name);

/* Prints the report of the zones the export at uri publishes in
 * qemu:zone-state, from the zone holding byte `offset`, at most `count`
 * zones.  Returns the exit status.
 */
int zones_over_nbd (const char *uri, uint64_t offset, uint32_t count,
                    bool json);

#endif /* ZQCOW2_IMG_ZONES_H */
