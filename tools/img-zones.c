/* zqcow2-img zones and zone: report the zones as 'blkzone report' does,
 * and reset, finish, open or close one zone of an image not in use.
 */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zqcow2.h"
#include "img-commands.h"
#include "img-print.h"
#include "img-util.h"
#include "img-zones.h"

static const char usage_zones[] =
  "Usage: " PROGRAM " zones [--offset BYTES] [--count ZONES]\n"
  "                  [--output=human|json] FILE|URI\n"
  "\n"
  "Report the zones, like 'blkzone report', from the zone containing byte\n"
  "BYTES (default 0), at most ZONES zones (default all).  Values are in\n"
  "bytes (blkzone prints 512-byte sectors).  With an NBD URI (nbd://,\n"
  "nbd+unix://, ...) the report is read from the export's qemu:zone-state\n"
  "metadata context, as zqcow2-nbd publishes it.\n";

static const char *
type_name (enum zq_zone_type type, bool json)
{
  switch (type) {
  case ZQ_ZONE_TYPE_CONVENTIONAL:
    return json ? "conventional" : "CONVENTIONAL";
  case ZQ_ZONE_TYPE_SEQWRITE_REQ:
    return json ? "seq-write-required" : "SEQ_WRITE_REQUIRED";
  }
  return "unknown";
}

/* Opens a zoned image and reads its geometry.  NULL, with the reason
 * logged, if it cannot be opened or is not zoned.
 */
static struct zq_image *
open_zoned_image (const char *filename, bool readonly,
                  struct zq_zone_geometry *g)
{
  struct zq_image *img = open_image (filename, readonly);

  if (img == NULL)
    return NULL;
  if (!zq_is_zoned (img) || zq_zone_geometry (img, g) == -1) {
    error ("%s: not a zoned image", filename);
    zq_close (img);
    return NULL;
  }
  return img;
}

/* ------------------------------------------------------------------ */
/* zones */

void
zones_print_begin (bool json)
{
  if (json)
    printf ("{\n    \"zones\": [");
}

void
zones_print_end (bool json)
{
  if (json)
    printf ("\n    ]\n}\n");
}

static void
zone_human (const struct zq_zone *z)
{
  bool conventional = z->type == ZQ_ZONE_TYPE_CONVENTIONAL;

  /* blkzone's layout; wptr is relative to the zone start as there. */
  printf ("  start: 0x%010" PRIx64 ", len 0x%08" PRIx64 ", cap 0x%08" PRIx64
          ", wptr 0x%08" PRIx64 ", zcond:%2u(%s) [type: %u(%s)]\n",
          z->start, z->length, z->capacity,
          conventional ? 0 : z->write_pointer - z->start,
          (unsigned) z->cond, zq_zone_cond_name (z->cond),
          (unsigned) z->type, type_name (z->type, false));
}

static void
zone_json (uint32_t number, const struct zq_zone *z, bool first)
{
  printf ("%s\n        { \"zone\": %" PRIu32 ", \"start\": %" PRIu64
          ", \"length\": %" PRIu64 ", \"capacity\": %" PRIu64
          ", \"write-pointer\": %" PRIu64 ", \"condition\": \"%s\""
          ", \"condition-code\": %u, \"type\": \"%s\", \"type-code\": %u }",
          first ? "" : ",", number, z->start, z->length, z->capacity,
          z->write_pointer, cond_name (z->cond), (unsigned) z->cond,
          type_name (z->type, true), (unsigned) z->type);
}

void
zones_print_zone (uint32_t number, const struct zq_zone *z, bool json,
                  bool first)
{
  if (json)
    zone_json (number, z, first);
  else
    zone_human (z);
}

static int
cmd_zones (struct command_line *cl)
{
  struct zq_zone batch[1024];
  struct zq_zone_geometry g;
  struct zq_image *img;
  uint64_t offset = 0, count = UINT32_MAX, n64;
  uint32_t zone, end, done = 0;
  const char *filename;
  int c, n, i, status = EXIT_FAILURE;

  while ((c = next_option (cl)) != -1) {
    switch (c) {
    case 'o':
      if (!parse_size (optarg, &offset))
        usage_error ("zones", "--offset '%s': not a byte offset (a number "
                     "with an optional K, M, G or T suffix)", optarg);
      break;
    case 'c':
      if (!parse_number (optarg, UINT32_MAX, &n64) || n64 == 0)
        usage_error ("zones", "--count '%s': not a number of zones "
                     "(1 or more)", optarg);
      count = n64;
      break;
    }
  }
  filename = file_operand (cl);
  if (is_nbd_uri (filename))
    return zones_over_nbd (filename, offset, count, cl->json);

  img = open_zoned_image (filename, true, &g);
  if (img == NULL)
    return EXIT_FAILURE;
  if (offset >= zq_virtual_size (img)) {
    error ("%s: --offset %" PRIu64 " is beyond the end of the device (%"
           PRIu64 " bytes)", filename, offset, zq_virtual_size (img));
    goto out;
  }
  zone = offset / g.zone_size;
  end = count > g.nr_zones - zone ? g.nr_zones : zone + count;

  zones_print_begin (cl->json);
  while (zone < end) {
    uint32_t want = end - zone < 1024 ? end - zone : 1024;

    n = zq_zone_report (img, zone, want, batch);
    if (n == -1)
      goto out;
    if (n == 0)
      break;
    for (i = 0; i < n; i++)
      zones_print_zone (zone + i, &batch[i], cl->json, done++ == 0);
    zone += n;
  }
  zones_print_end (cl->json);
  status = EXIT_SUCCESS;
 out:
  if (zq_close (img) == -1)
    status = EXIT_FAILURE;
  return status;
}

static const struct option zones_options[] = {
  { "offset", required_argument, NULL, 'o' },
  { "count", required_argument, NULL, 'c' },
  { NULL, 0, NULL, 0 },
};

const struct command zones_command = {
  .name = "zones", .run = cmd_zones, .usage = usage_zones,
  .short_options = "o:c:", .long_options = zones_options, .output = true,
};

/* ------------------------------------------------------------------ */
/* zone reset|finish|open|close */

static const char usage_zone[] =
  "Usage: " PROGRAM " zone reset|finish|open|close FILE ZONE\n"
  "\n"
  "Apply a zone management operation to zone number ZONE of an image that\n"
  "is not in use.  Open and close change only the state in memory, which\n"
  "ends with the command: they check that the transition is allowed.\n";

static const struct {
  const char *name;
  int (*fn) (struct zq_image *img, uint32_t zone);
} zone_operations[] = {
  { "reset", zq_zone_reset },
  { "finish", zq_zone_finish },
  { "open", zq_zone_open },
  { "close", zq_zone_close },
};

static int
cmd_zone (struct command_line *cl)
{
  static const char *const operand_names[] = {
    "the operation (reset, finish, open or close)", "FILE", "ZONE"
  };
  int (*fn) (struct zq_image *img, uint32_t zone) = NULL;
  struct zq_zone_geometry g;
  struct zq_info info;
  struct zq_image *img;
  const char *operation, *filename;
  char **args;
  uint64_t zone;
  size_t k;
  int status = EXIT_FAILURE;

  /* It has no options of its own. */
  while (next_option (cl) != -1)
    ;
  need_operands (cl, operand_names, 1);
  operation = cl->argv[optind];
  for (k = 0; k < sizeof zone_operations / sizeof zone_operations[0]; k++)
    if (!strcmp (operation, zone_operations[k].name))
      fn = zone_operations[k].fn;
  if (fn == NULL)
    usage_error ("zone", "unknown operation '%s' (reset, finish, open or "
                 "close)", operation);
  args = operands (cl, operand_names, 3);
  filename = args[1];
  if (!parse_number (args[2], UINT32_MAX, &zone))
    usage_error ("zone", "ZONE '%s' is not a zone number", args[2]);

  /* Look before opening read-write: a plain image is left untouched. */
  if (zq_info (filename, &info) == -1)
    return EXIT_FAILURE;
  if (!info.zoned) {
    error ("%s: not a zoned image", filename);
    return EXIT_FAILURE;
  }
  img = open_zoned_image (filename, false, &g);
  if (img == NULL)
    return EXIT_FAILURE;
  if (zone >= g.nr_zones) {
    error ("%s: zone %" PRIu64 " does not exist (the image has %" PRIu32
           " zones, 0 to %" PRIu32 ")", filename, zone, g.nr_zones,
           g.nr_zones - 1);
    goto out;
  }
  if (fn (img, zone) == 0)
    status = EXIT_SUCCESS;
 out:
  if (zq_close (img) == -1)
    status = EXIT_FAILURE;
  return status;
}

/* Options end at the operation: "zone reset -h" is not asking for
 * help.
 */
const struct command zone_command = {
  .name = "zone", .run = cmd_zone, .usage = usage_zone,
  .options_first = true,
};
