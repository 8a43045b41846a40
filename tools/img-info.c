/* zqcow2-img info: the image as qemu-img info describes it, plus its
 * zone geometry and how many zones are in each condition.
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

static const char usage_info[] =
  "Usage: " PROGRAM " info [--output=human|json] FILE\n"
  "\n"
  "Describe the image as qemu-img info does, plus its zone geometry and\n"
  "how many zones are in each condition.\n";

/* A size as qemu-img prints it: three significant digits and a binary
 * unit ("196 KiB", "1.5 GiB").
 */
static void
human_size (uint64_t bytes, char *buf, size_t len)
{
  static const char *const units[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi",
                                       "Ei" };
  double limit = 1000;
  unsigned i = 0;

  /* Move to the next unit from 1000 of the previous one, as qemu does. */
  while (i < 6 && (double) bytes >= limit) {
    i++;
    limit *= 1024;
  }
  snprintf (buf, len, "%0.3g %sB",
            (double) bytes / (double) (UINT64_C (1) << (10 * i)), units[i]);
}

/* Every condition, in the order reports list them. */
static const enum zq_zone_cond all_conds[] = {
  ZQ_ZONE_COND_NOT_WP, ZQ_ZONE_COND_EMPTY, ZQ_ZONE_COND_IMP_OPEN,
  ZQ_ZONE_COND_EXP_OPEN, ZQ_ZONE_COND_CLOSED, ZQ_ZONE_COND_FULL,
  ZQ_ZONE_COND_READONLY, ZQ_ZONE_COND_OFFLINE,
};
#define NR_CONDS (sizeof all_conds / sizeof all_conds[0])

/* The engine's messages while info peeks at zone conditions: kept, and
 * shown as a warning if the peek fails, since info works without it.
 */
static char peek_error[1024];

/* The warnings zq_info gave: the peek opens the image again, and the
 * engine repeats some of them (a geometry QEMU reads differently).
 */
#define MAX_INFO_WARNINGS 4
static char info_warnings[MAX_INFO_WARNINGS][512];
static unsigned nr_info_warnings;

static void
log_info_warnings (enum zq_log_level level, const char *message)
{
  if (level == ZQ_LOG_WARNING && nr_info_warnings < MAX_INFO_WARNINGS)
    snprintf (info_warnings[nr_info_warnings++], sizeof info_warnings[0],
              "%s", message);
  log_to_stderr (level, message);
}

static bool
already_warned (const char *message)
{
  unsigned i;

  for (i = 0; i < nr_info_warnings; i++)
    if (strcmp (info_warnings[i], message) == 0)
      return true;
  return false;
}

static void
log_to_peek_error (enum zq_log_level level, const char *message)
{
  if (level == ZQ_LOG_WARNING && already_warned (message))
    return;
  if (level != ZQ_LOG_ERROR)
    log_to_stderr (level, message);
  else if (peek_error[0] == '\0')
    snprintf (peek_error, sizeof peek_error, "%s", message);
}

/* Counts the zones in each condition.  false if the image cannot be
 * opened by the engine.
 */
static bool
count_conditions (const char *filename, uint32_t nr_zones,
                  uint64_t counts[NR_CONDS])
{
  struct zq_zone batch[1024];
  struct zq_image *img;
  uint32_t first = 0;
  bool ok = true;
  size_t k;
  int n, i;

  memset (counts, 0, NR_CONDS * sizeof counts[0]);
  peek_error[0] = '\0';
  zq_set_log_fn (log_to_peek_error);
  img = open_image (filename, true);
  if (img == NULL || !zq_is_zoned (img)) {
    zq_set_log_fn (log_to_stderr);
    if (img)
      zq_close (img);
    else
      fprintf (stderr, "%s: warning: zone conditions are not available: "
               "%s\n", PROGRAM, peek_error);
    return false;
  }
  while (first < nr_zones) {
    n = zq_zone_report (img, first, 1024, batch);
    if (n <= 0) {
      ok = n == 0;
      break;
    }
    for (i = 0; i < n; i++)
      for (k = 0; k < NR_CONDS; k++)
        if (batch[i].cond == all_conds[k])
          counts[k]++;
    first += n;
  }
  zq_close (img);
  zq_set_log_fn (log_to_stderr);
  if (!ok)
    fprintf (stderr, "%s: warning: zone conditions are not available: %s\n",
             PROGRAM, peek_error);
  return ok;
}

static void
info_human (const char *filename, const struct zq_info *info,
            bool have_counts, const uint64_t counts[NR_CONDS])
{
  const struct zq_zone_geometry *g = &info->geometry;
  char size[32];
  size_t k;

  human_size (info->virtual_size, size, sizeof size);
  printf ("image: %s\n", filename);
  printf ("file format: qcow2\n");
  printf ("virtual size: %s (%" PRIu64 " bytes)\n", size, info->virtual_size);
  human_size (info->disk_size, size, sizeof size);
  printf ("disk size: %s\n", size);
  printf ("cluster_size: %" PRIu32 "\n", info->cluster_size);
  if (info->backing_file[0])
    printf ("backing file: %s\n", info->backing_file);
  if (info->backing_format[0])
    printf ("backing file format: %s\n", info->backing_format);
  if (info->nr_snapshots)
    printf ("snapshots: %" PRIu32 "\n", info->nr_snapshots);
  printf ("Format specific information:\n");
  printf ("    compat: %s\n", info->version >= 3 ? "1.1" : "0.10");
  if (info->version >= 3) {
    printf ("    compression type: %s\n",
            info->compression_type == 1 ? "zstd" : "zlib");
    printf ("    lazy refcounts: %s\n",
            info->lazy_refcounts ? "true" : "false");
  }
  printf ("    refcount bits: %u\n", info->refcount_bits);
  if (info->data_file_name[0])
    printf ("    data file: %s\n", info->data_file_name);
  if (info->data_file)
    printf ("    data file raw: %s\n",
            info->data_file_raw ? "true" : "false");
  printf ("    corrupt: %s\n", info->corrupt ? "true" : "false");
  if (info->dirty)
    printf ("    dirty: true\n");
  printf ("    extended l2: %s\n", info->extended_l2 ? "true" : "false");
  if (!info->zoned)
    return;

  printf ("Zoned device information:\n");
  printf ("    zone model: host-managed\n");
  human_size (g->zone_size, size, sizeof size);
  printf ("    zone size: %s (%" PRIu64 " bytes)\n", size, g->zone_size);
  human_size (g->zone_capacity, size, sizeof size);
  printf ("    zone capacity: %s (%" PRIu64 " bytes)\n", size,
          g->zone_capacity);
  printf ("    zones: %" PRIu32 " (%" PRIu32 " conventional, %" PRIu32
          " sequential)\n", g->nr_zones, g->conventional_zones,
          g->nr_zones >= g->conventional_zones
          ? g->nr_zones - g->conventional_zones : 0);
  if (g->zone_size && info->virtual_size % g->zone_size) {
    human_size (info->virtual_size % g->zone_size, size, sizeof size);
    printf ("    last zone: %s (short)\n", size);
  }
  if (g->max_open_zones)
    printf ("    max open zones: %" PRIu32 "\n", g->max_open_zones);
  else
    printf ("    max open zones: no limit\n");
  if (g->max_active_zones)
    printf ("    max active zones: %" PRIu32 "\n", g->max_active_zones);
  else
    printf ("    max active zones: no limit\n");
  printf ("    max append bytes: %" PRIu32 "\n", g->max_append_bytes);
  printf ("    write-pointer table: %" PRIu64 " bytes at offset 0x%" PRIx64
          "\n", g->zonedmeta_size, g->zonedmeta_offset);
  if (have_counts) {
    printf ("    zones by condition:\n");
    for (k = 0; k < NR_CONDS; k++)
      if (counts[k])
        printf ("        %s: %" PRIu64 "\n", cond_name (all_conds[k]),
                counts[k]);
  }
}

static void
info_json (const char *filename, const struct zq_info *info,
           bool have_counts, const uint64_t counts[NR_CONDS])
{
  const struct zq_zone_geometry *g = &info->geometry;
  size_t k;
  bool first;

  printf ("{\n");
  printf ("    \"virtual-size\": %" PRIu64 ",\n", info->virtual_size);
  printf ("    \"filename\": ");
  json_string (filename);
  printf (",\n");
  printf ("    \"cluster-size\": %" PRIu32 ",\n", info->cluster_size);
  printf ("    \"format\": \"qcow2\",\n");
  printf ("    \"actual-size\": %" PRIu64 ",\n", info->disk_size);
  if (info->backing_file[0]) {
    printf ("    \"backing-filename\": ");
    json_string (info->backing_file);
    printf (",\n");
  }
  if (info->backing_format[0]) {
    printf ("    \"backing-filename-format\": ");
    json_string (info->backing_format);
    printf (",\n");
  }
  if (info->nr_snapshots)
    printf ("    \"snapshots\": %" PRIu32 ",\n", info->nr_snapshots);
  printf ("    \"format-specific\": {\n");
  printf ("        \"type\": \"qcow2\",\n");
  printf ("        \"data\": {\n");
  printf ("            \"compat\": \"%s\",\n",
          info->version >= 3 ? "1.1" : "0.10");
  if (info->version >= 3) {
    printf ("            \"compression-type\": \"%s\",\n",
            info->compression_type == 1 ? "zstd" : "zlib");
    printf ("            \"lazy-refcounts\": %s,\n",
            info->lazy_refcounts ? "true" : "false");
  }
  printf ("            \"refcount-bits\": %u,\n", info->refcount_bits);
  if (info->data_file_name[0]) {
    printf ("            \"data-file\": ");
    json_string (info->data_file_name);
    printf (",\n");
  }
  if (info->data_file)
    printf ("            \"data-file-raw\": %s,\n",
            info->data_file_raw ? "true" : "false");
  printf ("            \"corrupt\": %s,\n", info->corrupt ? "true" : "false");
  printf ("            \"extended-l2\": %s\n",
          info->extended_l2 ? "true" : "false");
  printf ("        }\n");
  printf ("    },\n");
  printf ("    \"dirty-flag\": %s", info->dirty ? "true" : "false");
  if (info->zoned) {
    printf (",\n    \"zoned\": {\n");
    printf ("        \"model\": \"host-managed\",\n");
    printf ("        \"zone-size\": %" PRIu64 ",\n", g->zone_size);
    printf ("        \"zone-capacity\": %" PRIu64 ",\n", g->zone_capacity);
    printf ("        \"nr-zones\": %" PRIu32 ",\n", g->nr_zones);
    printf ("        \"conventional-zones\": %" PRIu32 ",\n",
            g->conventional_zones);
    printf ("        \"max-open-zones\": %" PRIu32 ",\n", g->max_open_zones);
    printf ("        \"max-active-zones\": %" PRIu32 ",\n",
            g->max_active_zones);
    printf ("        \"max-append-bytes\": %" PRIu32 ",\n",
            g->max_append_bytes);
    printf ("        \"zonedmeta-offset\": %" PRIu64 ",\n",
            g->zonedmeta_offset);
    printf ("        \"zonedmeta-size\": %" PRIu64, g->zonedmeta_size);
    if (have_counts) {
      printf (",\n        \"zones-by-condition\": {");
      for (first = true, k = 0; k < NR_CONDS; k++) {
        if (!counts[k])
          continue;
        printf ("%s\n            \"%s\": %" PRIu64, first ? "" : ",",
                cond_name (all_conds[k]), counts[k]);
        first = false;
      }
      printf ("\n        }");
    }
    printf ("\n    }");
  }
  printf ("\n}\n");
}

static int
cmd_info (struct command_line *cl)
{
  uint64_t counts[NR_CONDS];
  struct zq_info info;
  bool have_counts = false;
  const char *filename;

  /* It has no options of its own. */
  while (next_option (cl) != -1)
    ;
  filename = file_operand (cl);

  zq_set_log_fn (log_info_warnings);
  if (zq_info (filename, &info) == -1)
    return EXIT_FAILURE;
  zq_set_log_fn (log_to_stderr);
  if (info.zoned)
    have_counts = count_conditions (filename, info.geometry.nr_zones, counts);
  if (cl->json)
    info_json (filename, &info, have_counts, counts);
  else
    info_human (filename, &info, have_counts, counts);
  return EXIT_SUCCESS;
}

const struct command info_command = {
  .name = "info", .run = cmd_info, .usage = usage_info, .output = true,
};
