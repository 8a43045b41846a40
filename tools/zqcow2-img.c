/* zqcow2-img: create, inspect, check and manage zoned qcow2 images
 * offline, in the manner of qemu-img and blkzone.
 *
 * Each command parses its arguments and calls the engine (lib/zqcow2.h);
 * the rules about images and zones all live there.  Errors are one line
 * on stderr naming what was wrong, with exit status 1 (check has its own
 * statuses, as qemu-img check does).
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zqcow2.h"

#define PROGRAM "zqcow2-img"

/* Exit statuses of check, as qemu-img check has them. */
#define CHECK_CLEAN        0
#define CHECK_INCOMPLETE   1
#define CHECK_CORRUPT      2
#define CHECK_LEAKS        3

/* ------------------------------------------------------------------ */
/* Messages */

static bool verbose;

static void
log_to_stderr (enum zq_log_level level, const char *message)
{
  switch (level) {
  case ZQ_LOG_ERROR:
    fprintf (stderr, "%s: %s\n", PROGRAM, message);
    break;
  case ZQ_LOG_WARNING:
    fprintf (stderr, "%s: warning: %s\n", PROGRAM, message);
    break;
  case ZQ_LOG_DEBUG:
    if (verbose)
      fprintf (stderr, "%s: debug: %s\n", PROGRAM, message);
    break;
  }
}

static void error (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));

static void
error (const char *fs, ...)
{
  va_list args;

  fprintf (stderr, "%s: ", PROGRAM);
  va_start (args, fs);
  vfprintf (stderr, fs, args);
  va_end (args);
  fputc ('\n', stderr);
}

/* A usage error in a command: say what, point at the help, exit 1. */
static void usage_error (const char *command, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3), noreturn));

static void
usage_error (const char *command, const char *fs, ...)
{
  va_list args;

  fprintf (stderr, "%s: %s%s", PROGRAM, command ? command : "",
           command ? ": " : "");
  va_start (args, fs);
  vfprintf (stderr, fs, args);
  va_end (args);
  fprintf (stderr, "\nTry '%s %s%s--help' for more information.\n",
           PROGRAM, command ? command : "", command ? " " : "");
  exit (EXIT_FAILURE);
}

/* getopt found an option it does not know: name it.  A short option is
 * named by optopt (argv may have been permuted); a digit there is most
 * likely a negative number.
 */
static void unknown_option (const char *command, char **argv)
  __attribute__ ((noreturn));

static void
unknown_option (const char *command, char **argv)
{
  if (optopt >= '0' && optopt <= '9')
    usage_error (command, "unknown option '-%c' (negative numbers are not "
                 "allowed)", optopt);
  if (optopt)
    usage_error (command, "unknown option '-%c'", optopt);
  usage_error (command, "unknown option '%s'", argv[optind - 1]);
}

/* ------------------------------------------------------------------ */
/* Usage texts */

static const char usage_create[] =
  "Usage: " PROGRAM " create [-q] [-f qcow2] [-o OPTIONS] FILE SIZE\n"
  "\n"
  "Create an empty qcow2 v3 image of SIZE bytes (suffixes K, M, G, T:\n"
  "powers of 1024), zoned with -o zone.mode=host-managed.  An existing\n"
  "FILE is replaced (atomically: it is never left half-written).\n"
  "\n"
  "  -f qcow2       the only format\n"
  "  -o OPTIONS     comma-separated NAME=VALUE list (may be repeated;\n"
  "                 '-o help' lists the options)\n"
  "  -q             do not print the 'Formatting' line\n";

static const char create_options_help[] =
  "Options for " PROGRAM " create -o:\n"
  "  cluster_size=SIZE                  512 to 2M, power of two (64K)\n"
  "  refcount_bits=N                    1, 2, 4, 8, 16, 32 or 64 (16)\n"
  "  lazy_refcounts=on|off              (off)\n"
  "  compression_type=zlib|zstd         (zlib)\n"
  "  zone.mode=host-managed             make a zoned image\n"
  "  zone.size=SIZE                     power of two (256M)\n"
  "  zone.capacity=SIZE                 writable bytes per zone (zone.size)\n"
  "  zone.conventional_zones=N          leading conventional zones (0)\n"
  "  zone.max_open_zones=N              0 = no limit (0)\n"
  "  zone.max_active_zones=N            0 = no limit (0)\n"
  "  zone.max_append_bytes=SIZE         multiple of 512 (64K)\n"
  "  zone.allow_short_last_zone=on|off  allow SIZE not a multiple of\n"
  "                                     zone.size (off)\n";

static const char usage_info[] =
  "Usage: " PROGRAM " info [--output=human|json] FILE\n"
  "\n"
  "Describe the image as qemu-img info does, plus its zone geometry and\n"
  "how many zones are in each condition.\n";

static const char usage_check[] =
  "Usage: " PROGRAM " check [--output=human|json] FILE\n"
  "\n"
  "Check the image's refcounts, tables and write pointers, read-only.\n"
  "Exit status: 0 no problems, 2 corruptions or zone errors, 3 leaked\n"
  "clusters only, 1 the check could not be completed.\n";

static const char usage_zones[] =
  "Usage: " PROGRAM " zones [--offset BYTES] [--count ZONES]\n"
  "                  [--output=human|json] FILE\n"
  "\n"
  "Report the zones, like 'blkzone report', from the zone containing byte\n"
  "BYTES (default 0), at most ZONES zones (default all).  Values are in\n"
  "bytes (blkzone prints 512-byte sectors).\n";

static const char usage_zone[] =
  "Usage: " PROGRAM " zone reset|finish|open|close FILE ZONE\n"
  "\n"
  "Apply a zone management operation to zone number ZONE of an image that\n"
  "is not in use.  Open and close change only the state in memory, which\n"
  "ends with the command: they check that the transition is allowed.\n";

static void
usage (FILE *fp)
{
  fprintf (fp,
           "Usage: %s COMMAND [OPTIONS...]\n"
           "\n"
           "Commands:\n"
           "  create [-q] [-f qcow2] [-o OPTIONS] FILE SIZE\n"
           "  info [--output=human|json] FILE\n"
           "  check [--output=human|json] FILE\n"
           "  zones [--offset BYTES] [--count ZONES] [--output=human|json] "
           "FILE\n"
           "  zone reset|finish|open|close FILE ZONE\n"
           "\n"
           "'%s COMMAND --help' describes a command; '%s --version' "
           "prints the version.\n"
           "See zqcow2-img(1).\n", PROGRAM, PROGRAM, PROGRAM);
}

/* ------------------------------------------------------------------ */
/* Parsing numbers */

/* A size in bytes: decimal digits with an optional K, M, G or T suffix
 * (powers of 1024, either case).  Nothing else: no sign, no spaces, no
 * fractions.
 */
static bool
parse_size (const char *s, uint64_t *out)
{
  uint64_t v = 0, mult = 1;
  const char *p = s;

  if (*p < '0' || *p > '9')
    return false;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > (UINT64_MAX - (*p - '0')) / 10)
      return false;
    v = v * 10 + (*p - '0');
  }
  switch (*p) {
  case '\0': break;
  case 'k': case 'K': mult = UINT64_C (1) << 10; p++; break;
  case 'm': case 'M': mult = UINT64_C (1) << 20; p++; break;
  case 'g': case 'G': mult = UINT64_C (1) << 30; p++; break;
  case 't': case 'T': mult = UINT64_C (1) << 40; p++; break;
  default: return false;
  }
  if (*p != '\0' || v > UINT64_MAX / mult)
    return false;
  *out = v * mult;
  return true;
}

/* A plain decimal number up to max. */
static bool
parse_number (const char *s, uint64_t max, uint64_t *out)
{
  uint64_t v = 0;
  const char *p = s;

  if (*p == '\0')
    return false;
  for (; *p; p++) {
    if (*p < '0' || *p > '9' || v > (UINT64_MAX - (*p - '0')) / 10)
      return false;
    v = v * 10 + (*p - '0');
  }
  if (v > max)
    return false;
  *out = v;
  return true;
}

static bool
parse_bool (const char *s, bool *out)
{
  if (!strcmp (s, "on") || !strcmp (s, "yes") || !strcmp (s, "true")) {
    *out = true;
    return true;
  }
  if (!strcmp (s, "off") || !strcmp (s, "no") || !strcmp (s, "false")) {
    *out = false;
    return true;
  }
  return false;
}

/* --output=human|json */
static bool
parse_output (const char *command, const char *s)
{
  if (!strcmp (s, "json"))
    return true;
  if (!strcmp (s, "human"))
    return false;
  usage_error (command, "--output '%s': use human or json", s);
}

/* ------------------------------------------------------------------ */
/* Printing */

/* A JSON string: quotes, backslashes and control characters escaped. */
static void
json_string (const char *s)
{
  putchar ('"');
  for (; *s; s++) {
    unsigned char ch = *s;
    switch (ch) {
    case '"': fputs ("\\\"", stdout); break;
    case '\\': fputs ("\\\\", stdout); break;
    case '\n': fputs ("\\n", stdout); break;
    case '\t': fputs ("\\t", stdout); break;
    case '\r': fputs ("\\r", stdout); break;
    default:
      if (ch < 0x20 || ch == 0x7f)
        printf ("\\u%04x", ch);
      else
        putchar (ch);
    }
  }
  putchar ('"');
}

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

static const char *
cond_name (enum zq_zone_cond cond)
{
  switch (cond) {
  case ZQ_ZONE_COND_NOT_WP: return "not-write-pointer";
  case ZQ_ZONE_COND_EMPTY: return "empty";
  case ZQ_ZONE_COND_IMP_OPEN: return "implicit-open";
  case ZQ_ZONE_COND_EXP_OPEN: return "explicit-open";
  case ZQ_ZONE_COND_CLOSED: return "closed";
  case ZQ_ZONE_COND_READONLY: return "read-only";
  case ZQ_ZONE_COND_FULL: return "full";
  case ZQ_ZONE_COND_OFFLINE: return "offline";
  }
  return "unknown";
}

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

/* Every condition, in the order reports list them. */
static const enum zq_zone_cond all_conds[] = {
  ZQ_ZONE_COND_NOT_WP, ZQ_ZONE_COND_EMPTY, ZQ_ZONE_COND_IMP_OPEN,
  ZQ_ZONE_COND_EXP_OPEN, ZQ_ZONE_COND_CLOSED, ZQ_ZONE_COND_FULL,
  ZQ_ZONE_COND_READONLY, ZQ_ZONE_COND_OFFLINE,
};
#define NR_CONDS (sizeof all_conds / sizeof all_conds[0])

/* ------------------------------------------------------------------ */
/* create */

/* Parses one -o list into the create options.  Exits on an error. */
static void
parse_create_options (char *list, struct zq_create_options *o,
                      const char **zone_option, bool *zone_mode)
{
  char *item;

  /* strsep, unlike strtok, returns the empty items of "a,,b" too. */
  while ((item = strsep (&list, ",")) != NULL) {
    char *value = strchr (item, '=');
    const char *name = item;
    uint64_t n;

    if (value)
      *value++ = '\0';

#define NEED_VALUE                                                      \
    do {                                                                \
      if (value == NULL || *value == '\0')                              \
        usage_error ("create", "option '%s' needs a value (%s=...)",    \
                     name, name);                                       \
    } while (0)
#define BAD_VALUE(what)                                                 \
    usage_error ("create", "option %s: invalid value '%s' (%s)",        \
                 name, value, what)

    if (!strcmp (name, "cluster_size")) {
      NEED_VALUE;
      if (!parse_size (value, &n) || n == 0 || n > UINT32_MAX)
        BAD_VALUE ("a size from 512 to 2M, such as 64K");
      o->cluster_size = n;
    }
    else if (!strcmp (name, "refcount_bits")) {
      NEED_VALUE;
      if (!parse_number (value, 64, &n) || n == 0)
        BAD_VALUE ("1, 2, 4, 8, 16, 32 or 64");
      o->refcount_bits = n;
    }
    else if (!strcmp (name, "lazy_refcounts")) {
      if (value == NULL)
        o->lazy_refcounts = true;
      else if (!parse_bool (value, &o->lazy_refcounts))
        BAD_VALUE ("on or off");
    }
    else if (!strcmp (name, "compression_type")) {
      NEED_VALUE;
      if (!strcmp (value, "zlib"))
        o->compression_zstd = false;
      else if (!strcmp (value, "zstd"))
        o->compression_zstd = true;
      else
        BAD_VALUE ("zlib or zstd");
    }
    else if (!strcmp (name, "zone.mode")) {
      NEED_VALUE;
      if (strcmp (value, "host-managed") != 0)
        BAD_VALUE ("only host-managed is supported");
      *zone_mode = true;
    }
    else if (!strncmp (name, "zone.", 5)) {
      const char *field = name + 5;

      *zone_option = name;
      if (!strcmp (field, "allow_short_last_zone")) {
        if (value == NULL)
          o->allow_short_last_zone = true;
        else if (!parse_bool (value, &o->allow_short_last_zone))
          BAD_VALUE ("on or off");
        continue;
      }
      NEED_VALUE;
      /* 0 stands for "the default" in zq_create_options, so an explicit
       * 0 is refused here rather than silently replaced.
       */
      if (!strcmp (field, "size")) {
        if (!parse_size (value, &n) || n == 0)
          BAD_VALUE ("a non-zero size, such as 256M");
        o->zone_size = n;
      }
      else if (!strcmp (field, "capacity")) {
        if (!parse_size (value, &n) || n == 0)
          BAD_VALUE ("a non-zero size, such as 192M");
        o->zone_capacity = n;
      }
      else if (!strcmp (field, "max_append_bytes")) {
        if (!parse_size (value, &n) || n == 0 || n > UINT32_MAX)
          BAD_VALUE ("a non-zero size below 4G, such as 64K");
        o->max_append_bytes = n;
      }
      else if (!strcmp (field, "conventional_zones")) {
        if (!parse_number (value, UINT32_MAX, &n))
          BAD_VALUE ("a number of zones");
        o->conventional_zones = n;
      }
      else if (!strcmp (field, "max_open_zones")) {
        if (!parse_number (value, UINT32_MAX, &n))
          BAD_VALUE ("a number of zones, 0 for no limit");
        o->max_open_zones = n;
      }
      else if (!strcmp (field, "max_active_zones")) {
        if (!parse_number (value, UINT32_MAX, &n))
          BAD_VALUE ("a number of zones, 0 for no limit");
        o->max_active_zones = n;
      }
      else
        usage_error ("create", "unknown option '%s' ('-o help' lists them)",
                     name);
    }
    else if (*name == '\0')
      usage_error ("create", "%s", "empty option in the -o list");
    else
      usage_error ("create", "unknown option '%s' ('-o help' lists them)",
                   name);
#undef NEED_VALUE
#undef BAD_VALUE
  }
}

static int
cmd_create (int argc, char **argv)
{
  static const struct option long_options[] = {
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  struct zq_create_options o = { 0 };
  const char *zone_option = NULL, *size_arg;
  bool zone_mode = false, quiet = false;
  uint64_t size;
  int c;

  while ((c = getopt_long (argc, argv, ":f:o:qh", long_options, NULL)) != -1) {
    switch (c) {
    case 'f':
      if (strcmp (optarg, "qcow2") != 0)
        usage_error ("create", "format '%s' is not supported: only qcow2",
                     optarg);
      break;
    case 'o':
      if (!strcmp (optarg, "help") || !strcmp (optarg, "?")) {
        fputs (create_options_help, stdout);
        return EXIT_SUCCESS;
      }
      parse_create_options (optarg, &o, &zone_option, &zone_mode);
      break;
    case 'q':
      quiet = true;
      break;
    case 'h':
      fputs (usage_create, stdout);
      return EXIT_SUCCESS;
    case ':':
      usage_error ("create", "option '%s' needs an argument",
                   argv[optind - 1]);
    default:
      unknown_option ("create", argv);
    }
  }
  if (argc - optind < 1)
    usage_error ("create", "%s", "missing FILE and SIZE");
  if (argc - optind < 2)
    usage_error ("create", "%s", "missing SIZE");
  if (argc - optind > 2)
    usage_error ("create", "unexpected argument '%s'", argv[optind + 2]);
  o.filename = argv[optind];
  size_arg = argv[optind + 1];
  if (!parse_size (size_arg, &size))
    usage_error ("create", "invalid size '%s' (a number of bytes with an "
                 "optional K, M, G or T suffix, below 16 EiB)", size_arg);
  if (size == 0)
    usage_error ("create", "%s", "size 0: the image must be larger");
  o.size = size;
  if (zone_option && !zone_mode)
    usage_error ("create", "option %s needs zone.mode=host-managed",
                 zone_option);
  o.zoned = zone_mode;

  if (!quiet) {
    printf ("Formatting '%s', fmt=qcow2 cluster_size=%" PRIu32
            " compression_type=%s size=%" PRIu64 " lazy_refcounts=%s "
            "refcount_bits=%u", o.filename,
            o.cluster_size ? o.cluster_size : 65536,
            o.compression_zstd ? "zstd" : "zlib", o.size,
            o.lazy_refcounts ? "on" : "off",
            o.refcount_bits ? o.refcount_bits : 16);
    if (o.zoned) {
      uint64_t zone_size = o.zone_size ? o.zone_size
                                       : UINT64_C (256) << 20;
      printf (" zone.mode=host-managed zone.size=%" PRIu64
              " zone.capacity=%" PRIu64 " zone.conventional_zones=%" PRIu32
              " zone.max_open_zones=%" PRIu32 " zone.max_active_zones=%"
              PRIu32 " zone.max_append_bytes=%" PRIu32, zone_size,
              o.zone_capacity ? o.zone_capacity : zone_size,
              o.conventional_zones, o.max_open_zones, o.max_active_zones,
              o.max_append_bytes ? o.max_append_bytes : 65536);
      if (o.allow_short_last_zone)
        printf (" zone.allow_short_last_zone=on");
    }
    putchar ('\n');
    fflush (stdout);
  }
  return zq_create (&o) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ------------------------------------------------------------------ */
/* Opening images for the zone commands */

/* The engine's messages while info peeks at zone conditions: kept, and
 * shown as a warning if the peek fails, since info works without it.
 */
static char peek_error[1024];

static void
log_to_peek_error (enum zq_log_level level, const char *message)
{
  if (level != ZQ_LOG_ERROR)
    log_to_stderr (level, message);
  else if (peek_error[0] == '\0')
    snprintf (peek_error, sizeof peek_error, "%s", message);
}

static struct zq_image *
open_image (const char *filename, bool readonly)
{
  struct zq_open_options options = {
    .filename = filename,
    .readonly = readonly,
  };

  return zq_open (&options);
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

/* ------------------------------------------------------------------ */
/* info */

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
cmd_info (int argc, char **argv)
{
  static const struct option long_options[] = {
    { "help", no_argument, NULL, 'h' },
    { "output", required_argument, NULL, 'O' },
    { NULL },
  };
  uint64_t counts[NR_CONDS];
  struct zq_info info;
  bool json = false, have_counts = false;
  const char *filename;
  int c;

  while ((c = getopt_long (argc, argv, ":h", long_options, NULL)) != -1) {
    switch (c) {
    case 'O':
      json = parse_output ("info", optarg);
      break;
    case 'h':
      fputs (usage_info, stdout);
      return EXIT_SUCCESS;
    case ':':
      usage_error ("info", "option '%s' needs an argument", argv[optind - 1]);
    default:
      unknown_option ("info", argv);
    }
  }
  if (argc - optind < 1)
    usage_error ("info", "%s", "missing FILE");
  if (argc - optind > 1)
    usage_error ("info", "unexpected argument '%s'", argv[optind + 1]);
  filename = argv[optind];

  if (zq_info (filename, &info) == -1)
    return EXIT_FAILURE;
  if (info.zoned)
    have_counts = count_conditions (filename, info.geometry.nr_zones, counts);
  if (json)
    info_json (filename, &info, have_counts, counts);
  else
    info_human (filename, &info, have_counts, counts);
  return EXIT_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* check */

static void
check_human (const struct zq_check_result *r)
{
  bool clean = !r->corruptions && !r->leaks && !r->wp_errors &&
               !r->check_errors;

  if (clean)
    printf ("No errors were found on the image.\n");
  if (r->corruptions)
    printf ("\n%" PRIu64 " errors were found on the image.\n"
            "Data may be corrupted, or further writes to the image may "
            "corrupt it.\n", r->corruptions);
  if (r->wp_errors)
    printf ("\n%" PRIu64 " zone errors were found on the image.\n"
            "zqcow2 will not open the image read-write until they are "
            "repaired.\n", r->wp_errors);
  if (r->leaks)
    printf ("\n%" PRIu64 " leaked clusters were found on the image.\n"
            "This means waste of disk space, but no harm to data.\n",
            r->leaks);
  if (r->check_errors)
    printf ("\n%" PRIu64 " internal errors have occurred during the "
            "check.\n", r->check_errors);
  if (r->total_clusters && r->allocated_clusters)
    printf ("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% "
            "fragmented, %0.2f%% compressed clusters\n",
            r->allocated_clusters, r->total_clusters,
            r->allocated_clusters * 100.0 / r->total_clusters,
            r->fragmented_clusters * 100.0 / r->allocated_clusters,
            r->compressed_clusters * 100.0 / r->allocated_clusters);
  if (r->image_end_offset)
    printf ("Image end offset: %" PRIu64 "\n", r->image_end_offset);
}

static void
check_json (const char *filename, const struct zq_check_result *r)
{
  printf ("{\n");
  printf ("    \"filename\": ");
  json_string (filename);
  printf (",\n");
  printf ("    \"format\": \"qcow2\",\n");
  printf ("    \"check-errors\": %" PRIu64 ",\n", r->check_errors);
  printf ("    \"corruptions\": %" PRIu64 ",\n", r->corruptions);
  printf ("    \"leaks\": %" PRIu64 ",\n", r->leaks);
  printf ("    \"zone-errors\": %" PRIu64 ",\n", r->wp_errors);
  printf ("    \"total-clusters\": %" PRIu64 ",\n", r->total_clusters);
  printf ("    \"allocated-clusters\": %" PRIu64 ",\n",
          r->allocated_clusters);
  printf ("    \"fragmented-clusters\": %" PRIu64 ",\n",
          r->fragmented_clusters);
  printf ("    \"compressed-clusters\": %" PRIu64 ",\n",
          r->compressed_clusters);
  printf ("    \"image-end-offset\": %" PRIu64 "\n", r->image_end_offset);
  printf ("}\n");
}

static int
cmd_check (int argc, char **argv)
{
  static const struct option long_options[] = {
    { "help", no_argument, NULL, 'h' },
    { "output", required_argument, NULL, 'O' },
    { NULL },
  };
  struct zq_check_result result;
  const char *filename;
  bool json = false;
  int c;

  while ((c = getopt_long (argc, argv, ":h", long_options, NULL)) != -1) {
    switch (c) {
    case 'O':
      json = parse_output ("check", optarg);
      break;
    case 'h':
      fputs (usage_check, stdout);
      return EXIT_SUCCESS;
    case ':':
      usage_error ("check", "option '%s' needs an argument",
                   argv[optind - 1]);
    default:
      unknown_option ("check", argv);
    }
  }
  if (argc - optind < 1)
    usage_error ("check", "%s", "missing FILE");
  if (argc - optind > 1)
    usage_error ("check", "unexpected argument '%s'", argv[optind + 1]);
  filename = argv[optind];

  if (zq_check (filename, &result) == -1) {
    error ("%s: the check could not be completed", filename);
    return CHECK_INCOMPLETE;
  }
  fflush (stderr);
  if (json)
    check_json (filename, &result);
  else
    check_human (&result);
  if (result.check_errors)
    return CHECK_INCOMPLETE;
  if (result.corruptions || result.wp_errors)
    return CHECK_CORRUPT;
  if (result.leaks)
    return CHECK_LEAKS;
  return CHECK_CLEAN;
}

/* ------------------------------------------------------------------ */
/* zones */

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

static int
cmd_zones (int argc, char **argv)
{
  static const struct option long_options[] = {
    { "help", no_argument, NULL, 'h' },
    { "output", required_argument, NULL, 'O' },
    { "offset", required_argument, NULL, 'o' },
    { "count", required_argument, NULL, 'c' },
    { NULL },
  };
  struct zq_zone batch[1024];
  struct zq_zone_geometry g;
  struct zq_image *img;
  uint64_t offset = 0, count = UINT32_MAX, n64;
  uint32_t zone, end, done = 0;
  const char *filename;
  bool json = false;
  int c, n, i, status = EXIT_FAILURE;

  while ((c = getopt_long (argc, argv, ":ho:c:", long_options, NULL)) != -1) {
    switch (c) {
    case 'O':
      json = parse_output ("zones", optarg);
      break;
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
    case 'h':
      fputs (usage_zones, stdout);
      return EXIT_SUCCESS;
    case ':':
      usage_error ("zones", "option '%s' needs an argument",
                   argv[optind - 1]);
    default:
      unknown_option ("zones", argv);
    }
  }
  if (argc - optind < 1)
    usage_error ("zones", "%s", "missing FILE");
  if (argc - optind > 1)
    usage_error ("zones", "unexpected argument '%s'", argv[optind + 1]);
  filename = argv[optind];

  img = open_image (filename, true);
  if (img == NULL)
    return EXIT_FAILURE;
  if (!zq_is_zoned (img) || zq_zone_geometry (img, &g) == -1) {
    error ("%s: not a zoned image", filename);
    goto out;
  }
  if (offset >= zq_virtual_size (img)) {
    error ("%s: --offset %" PRIu64 " is beyond the end of the device (%"
           PRIu64 " bytes)", filename, offset, zq_virtual_size (img));
    goto out;
  }
  zone = offset / g.zone_size;
  end = count > g.nr_zones - zone ? g.nr_zones : zone + count;

  if (json)
    printf ("{\n    \"zones\": [");
  while (zone < end) {
    uint32_t want = end - zone < 1024 ? end - zone : 1024;

    n = zq_zone_report (img, zone, want, batch);
    if (n == -1)
      goto out;
    if (n == 0)
      break;
    for (i = 0; i < n; i++) {
      if (json)
        zone_json (zone + i, &batch[i], done == 0);
      else
        zone_human (&batch[i]);
      done++;
    }
    zone += n;
  }
  if (json)
    printf ("\n    ]\n}\n");
  status = EXIT_SUCCESS;
 out:
  if (zq_close (img) == -1)
    status = EXIT_FAILURE;
  return status;
}

/* ------------------------------------------------------------------ */
/* zone reset|finish|open|close */

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
cmd_zone (int argc, char **argv)
{
  static const struct option long_options[] = {
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  int (*fn) (struct zq_image *img, uint32_t zone) = NULL;
  struct zq_zone_geometry g;
  struct zq_info info;
  struct zq_image *img;
  const char *operation, *filename;
  uint64_t zone;
  size_t k;
  int c, status = EXIT_FAILURE;

  while ((c = getopt_long (argc, argv, "+:h", long_options, NULL)) != -1) {
    switch (c) {
    case 'h':
      fputs (usage_zone, stdout);
      return EXIT_SUCCESS;
    default:
      unknown_option ("zone", argv);
    }
  }
  if (argc - optind < 1)
    usage_error ("zone", "%s", "missing the operation "
                 "(reset, finish, open or close)");
  operation = argv[optind];
  for (k = 0; k < sizeof zone_operations / sizeof zone_operations[0]; k++)
    if (!strcmp (operation, zone_operations[k].name))
      fn = zone_operations[k].fn;
  if (fn == NULL)
    usage_error ("zone", "unknown operation '%s' (reset, finish, open or "
                 "close)", operation);
  if (argc - optind < 2)
    usage_error ("zone", "%s", "missing FILE and ZONE");
  if (argc - optind < 3)
    usage_error ("zone", "%s", "missing ZONE");
  if (argc - optind > 3)
    usage_error ("zone", "unexpected argument '%s'", argv[optind + 3]);
  filename = argv[optind + 1];
  if (!parse_number (argv[optind + 2], UINT32_MAX, &zone))
    usage_error ("zone", "ZONE '%s' is not a zone number",
                 argv[optind + 2]);

  /* Look before opening read-write: a plain image is left untouched. */
  if (zq_info (filename, &info) == -1)
    return EXIT_FAILURE;
  if (!info.zoned) {
    error ("%s: not a zoned image", filename);
    return EXIT_FAILURE;
  }
  img = open_image (filename, false);
  if (img == NULL)
    return EXIT_FAILURE;
  if (!zq_is_zoned (img) || zq_zone_geometry (img, &g) == -1) {
    error ("%s: not a zoned image", filename);
    goto out;
  }
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

/* ------------------------------------------------------------------ */

static const struct {
  const char *name;
  int (*fn) (int argc, char **argv);
} commands[] = {
  { "create", cmd_create },
  { "info", cmd_info },
  { "check", cmd_check },
  { "zones", cmd_zones },
  { "zone", cmd_zone },
};

int
main (int argc, char **argv)
{
  size_t k;

  zq_set_log_fn (log_to_stderr);
  if (getenv ("ZQCOW2_DEBUG"))
    verbose = true;

  if (argc < 2) {
    usage (stderr);
    return EXIT_FAILURE;
  }
  if (!strcmp (argv[1], "--help") || !strcmp (argv[1], "-h") ||
      !strcmp (argv[1], "help")) {
    usage (stdout);
    return EXIT_SUCCESS;
  }
  if (!strcmp (argv[1], "--version") || !strcmp (argv[1], "-V")) {
    printf ("%s %s\n", PROGRAM, PACKAGE_VERSION);
    return EXIT_SUCCESS;
  }
  for (k = 0; k < sizeof commands / sizeof commands[0]; k++) {
    if (!strcmp (argv[1], commands[k].name)) {
      /* Each command parses its own options, its name as argv[0]. */
      opterr = 0;
      optind = 0;
      return commands[k].fn (argc - 1, argv + 1);
    }
  }
  usage_error (NULL, "unknown command '%s'", argv[1]);
}
