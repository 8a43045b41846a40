/* The engine's options on the command line, shared by zqcow2-nbd and
 * zqcow2-ublk so that both take them alike: --backing, --data-file,
 * --l2-cache-size, --offline-zones, --readonly-zones.
 */
#ifndef ZQ_ENGINE_OPTIONS_H
#define ZQ_ENGINE_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "zqcow2.h"

/* getopt_long values; a front end's own long options stay below. */
enum {
  ENGINE_OPT_L2_CACHE_SIZE = 0x1000,
  ENGINE_OPT_OFFLINE_ZONES,
  ENGINE_OPT_READONLY_ZONES,
  ENGINE_OPT_BACKING,
  ENGINE_OPT_DATA_FILE,
};

/* Entries for a front end's struct option table. */
#define ENGINE_LONG_OPTIONS                                                  \
  { "l2-cache-size", required_argument, NULL, ENGINE_OPT_L2_CACHE_SIZE },    \
  { "offline-zones", required_argument, NULL, ENGINE_OPT_OFFLINE_ZONES },    \
  { "readonly-zones", required_argument, NULL, ENGINE_OPT_READONLY_ZONES },  \
  { "backing", required_argument, NULL, ENGINE_OPT_BACKING },                \
  { "data-file", required_argument, NULL, ENGINE_OPT_DATA_FILE }

/* Their lines in --help. */
#define ENGINE_OPTIONS_HELP                                                  \
"      --backing FILE|none   this backing file instead of the image's, or none\n" \
"      --data-file FILE      this external data file instead of the image's\n" \
"      --l2-cache-size SIZE  memory for cached L2 tables (e.g. 4M)\n"        \
"      --offline-zones LIST  zones to report offline (e.g. 3,7-9)\n"         \
"      --readonly-zones LIST zones to report read-only\n"

struct engine_options {
  uint64_t l2_cache_bytes;
  const char *offline_zones;
  const char *readonly_zones;
  const char *backing;          /* --backing FILE, or "none" */
  const char *data_file;        /* --data-file FILE; NULL: the image's */
};

/* Takes getopt_long's c and optarg if c is an engine option (returns
 * true), else returns false.  Exits with a message naming program on a
 * bad value.
 */
bool engine_option (const char *program, int c, const char *arg,
                    struct engine_options *eo);

/* The zq_open options for image as the command line asked. */
struct zq_open_options engine_open_options (const struct engine_options *eo,
                                            const char *image,
                                            bool readonly);

/* SIZE with an optional binary suffix: 512, 64K, 4M, 1G.  0 or -1. */
int engine_parse_size (const char *arg, uint64_t *size);

#endif /* ZQ_ENGINE_OPTIONS_H */
