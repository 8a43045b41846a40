/* zqcow2-img create: parse the -o options into zq_create_options and
 * let the engine, which checks the geometry, write the image.
 */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zqcow2.h"
#include "img-commands.h"
#include "img-util.h"

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
  "  data_file=NAME                     keep the guest's data in the file\n"
  "                                     NAME (made empty; a relative NAME\n"
  "                                     is beside the image)\n"
  "  data_file_raw=on|off               keep NAME a raw image of the disk\n"
  "                                     (off)\n"
  "  zone.mode=host-managed             make a zoned image\n"
  "  zone.size=SIZE                     power of two, 512 or more (256M)\n"
  "  zone.capacity=SIZE                 writable bytes per zone (zone.size)\n"
  "  zone.conventional_zones=N          leading conventional zones (0)\n"
  "  zone.max_open_zones=N              0 = no limit (0)\n"
  "  zone.max_active_zones=N            0 = no limit (0; with only\n"
  "                                     max_open_zones: the sequential\n"
  "                                     zones)\n"
  "  zone.max_append_bytes=SIZE         multiple of 512, + 512 below\n"
  "                                     zone.capacity (64K, or the\n"
  "                                     largest below that)\n"
  "  zone.allow_short_last_zone=on|off  allow SIZE not a multiple of\n"
  "                                     zone.size (off)\n";

static void bad_value (const char *name, const char *value, const char *what)
  __attribute__ ((noreturn));

/* An -o option whose value is not what it should be: say what. */
static void
bad_value (const char *name, const char *value, const char *what)
{
  usage_error ("create", "option %s: invalid value '%s' (%s)",
               name, value, what);
}

/* An option that takes a value was given none. */
static void
need_value (const char *name, const char *value)
{
  if (value == NULL || *value == '\0')
    usage_error ("create", "option '%s' needs a value (%s=...)", name, name);
}

/* The value of a size option, given: not 0, since 0 stands for "the
 * default" in zq_create_options and an explicit 0 is refused rather
 * than silently replaced.
 */
static uint64_t
size_value (const char *name, const char *value, uint64_t max,
            const char *what)
{
  uint64_t n;

  if (!parse_size (value, &n) || n == 0 || n > max)
    bad_value (name, value, what);
  return n;
}

/* The value of an option that counts zones, given. */
static uint32_t
zones_value (const char *name, const char *value, const char *what)
{
  uint64_t n;

  if (!parse_number (value, UINT32_MAX, &n))
    bad_value (name, value, what);
  return n;
}

/* An on|off option: on without a value. */
static bool
bool_value (const char *name, const char *value)
{
  bool b;

  if (value == NULL)
    return true;
  if (!parse_bool (value, &b))
    bad_value (name, value, "on or off");
  return b;
}

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

    if (!strcmp (name, "cluster_size")) {
      need_value (name, value);
      o->cluster_size = size_value (name, value, UINT32_MAX,
                                    "a size from 512 to 2M, such as 64K");
    }
    else if (!strcmp (name, "refcount_bits")) {
      need_value (name, value);
      if (!parse_number (value, 64, &n) || n == 0)
        bad_value (name, value, "1, 2, 4, 8, 16, 32 or 64");
      o->refcount_bits = n;
    }
    else if (!strcmp (name, "lazy_refcounts"))
      o->lazy_refcounts = bool_value (name, value);
    else if (!strcmp (name, "compression_type")) {
      need_value (name, value);
      if (!strcmp (value, "zlib"))
        o->compression_zstd = false;
      else if (!strcmp (value, "zstd"))
        o->compression_zstd = true;
      else
        bad_value (name, value, "zlib or zstd");
    }
    else if (!strcmp (name, "data_file")) {
      need_value (name, value);
      o->data_file = value;
    }
    else if (!strcmp (name, "data_file_raw"))
      o->data_file_raw = bool_value (name, value);
    else if (!strcmp (name, "zone.mode")) {
      need_value (name, value);
      if (strcmp (value, "host-managed") != 0)
        bad_value (name, value, "only host-managed is supported");
      *zone_mode = true;
    }
    else if (!strncmp (name, "zone.", 5)) {
      const char *field = name + 5;

      *zone_option = name;
      if (!strcmp (field, "allow_short_last_zone")) {
        o->allow_short_last_zone = bool_value (name, value);
        continue;
      }
      need_value (name, value);
      if (!strcmp (field, "size"))
        o->zone_size = size_value (name, value, UINT64_MAX,
                                   "a non-zero size, such as 256M");
      else if (!strcmp (field, "capacity"))
        o->zone_capacity = size_value (name, value, UINT64_MAX,
                                       "a non-zero size, such as 192M");
      else if (!strcmp (field, "max_append_bytes"))
        o->max_append_bytes = size_value (name, value, UINT32_MAX,
                                          "a non-zero size below 4G, "
                                          "such as 64K");
      else if (!strcmp (field, "conventional_zones"))
        o->conventional_zones = zones_value (name, value,
                                             "a number of zones");
      else if (!strcmp (field, "max_open_zones"))
        o->max_open_zones = zones_value (name, value, "a number of zones, "
                                         "0 for no limit");
      else if (!strcmp (field, "max_active_zones"))
        o->max_active_zones = zones_value (name, value, "a number of "
                                           "zones, 0 for no limit");
      else
        usage_error ("create", "unknown option '%s' ('-o help' lists them)",
                     name);
    }
    else if (*name == '\0')
      usage_error ("create", "%s", "empty option in the -o list");
    else
      usage_error ("create", "unknown option '%s' ('-o help' lists them)",
                   name);
  }
}

static int
cmd_create (struct command_line *cl)
{
  static const char *const operand_names[] = { "FILE", "SIZE" };
  struct zq_create_options o = { 0 };
  const char *zone_option = NULL, *size_arg;
  bool zone_mode = false, quiet = false;
  char **args;
  uint64_t size;
  int c;

  while ((c = next_option (cl)) != -1) {
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
    }
  }
  args = operands (cl, operand_names, 2);
  o.filename = args[0];
  size_arg = args[1];
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

  /* The engine fills in the defaults; the line shows what it will use. */
  if (!quiet) {
    struct zq_create_options shown = o;

    zq_create_defaults (&shown);
    printf ("Formatting '%s', fmt=qcow2 cluster_size=%" PRIu32
            " compression_type=%s size=%" PRIu64, shown.filename,
            shown.cluster_size, shown.compression_zstd ? "zstd" : "zlib",
            shown.size);
    if (shown.data_file)
      printf (" data_file=%s", shown.data_file);
    if (shown.data_file_raw)
      printf (" data_file_raw=on");
    printf (" lazy_refcounts=%s refcount_bits=%u",
            shown.lazy_refcounts ? "on" : "off", shown.refcount_bits);
    if (shown.zoned) {
      printf (" zone.mode=host-managed zone.size=%" PRIu64
              " zone.capacity=%" PRIu64 " zone.conventional_zones=%" PRIu32
              " zone.max_open_zones=%" PRIu32 " zone.max_active_zones=%"
              PRIu32 " zone.max_append_bytes=%" PRIu32, shown.zone_size,
              shown.zone_capacity, shown.conventional_zones,
              shown.max_open_zones, shown.max_active_zones,
              shown.max_append_bytes);
      if (shown.allow_short_last_zone)
        printf (" zone.allow_short_last_zone=on");
    }
    putchar ('\n');
    fflush (stdout);
  }
  return zq_create (&o) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

const struct command create_command = {
  .name = "create", .run = cmd_create, .usage = usage_create,
  .short_options = "f:o:q",
};
