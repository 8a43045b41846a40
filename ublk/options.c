/* The command line: options, their checks, --help and --version. */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ublk.h"

enum {
  OPT_QUEUES = 256,
  OPT_DEPTH,
  OPT_FOREGROUND,
  OPT_PIDFILE,
  OPT_DELETE,
  OPT_HELP,
  OPT_VERSION,
};

static const struct option long_options[] = {
  { "readonly", no_argument, NULL, 'r' },
  { "read-only", no_argument, NULL, 'r' },
  { "queues", required_argument, NULL, OPT_QUEUES },
  { "depth", required_argument, NULL, OPT_DEPTH },
  { "foreground", no_argument, NULL, OPT_FOREGROUND },
  { "pidfile", required_argument, NULL, OPT_PIDFILE },
  { "delete", required_argument, NULL, OPT_DELETE },
  ENGINE_LONG_OPTIONS,
  { "verbose", no_argument, NULL, 'v' },
  { "help", no_argument, NULL, OPT_HELP },
  { "version", no_argument, NULL, OPT_VERSION },
  { NULL, 0, NULL, 0 },
};

static void
usage (FILE *out)
{
  fprintf (out,
"Usage: %s [-r] [--queues N] [--depth N] [--foreground] [--pidfile FILE]\n"
"           [--backing FILE|none] [--data-file FILE] [--l2-cache-size SIZE]\n"
"           [--offline-zones LIST] [--readonly-zones LIST] [-v] IMAGE\n"
"       %s --delete N\n"
"Serve a qcow2 image as the Linux block device /dev/ublkbN, a host-managed\n"
"zoned one when the image is zoned, until SIGINT or SIGTERM.\n"
"\n"
"  -r, --readonly         a read-only device; the image is never modified\n"
"      --queues N         hardware queues, each with its thread (default %d)\n"
"      --depth N          requests in flight per queue (default %d)\n"
"      --foreground       stay in the foreground (default: detach once the\n"
"                         device is up)\n"
"      --pidfile FILE     write the serving process's id to FILE\n"
"      --delete N         remove ublk device N left behind by a killed server\n"
ENGINE_OPTIONS_HELP
"  -v, --verbose          debug messages\n"
"      --help, --version\n"
"\n"
"Needs root and the ublk_drv module (Linux 6.6 or later for zoned images).\n"
"See zqcow2-ublk(8).\n",
           PROGRAM_NAME, PROGRAM_NAME, DEFAULT_QUEUES, DEFAULT_DEPTH);
}

/* A whole number in [min, max], or exit. */
static unsigned
parse_count (const char *option, const char *arg, unsigned min, unsigned max)
{
  char *end;
  unsigned long n;

  errno = 0;
  n = strtoul (arg, &end, 10);
  if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-' ||
      n < min || n > max) {
    ublk_error ("%s %s: give a number from %u to %u", option, arg, min, max);
    exit (EXIT_FAILURE);
  }
  return (unsigned) n;
}

void
parse_options (int argc, char *argv[], struct options *o)
{
  int c;

  o->queues = DEFAULT_QUEUES;
  o->depth = DEFAULT_DEPTH;
  o->delete_id = -1;
  while ((c = getopt_long (argc, argv, "rv", long_options, NULL)) != -1) {
    switch (c) {
    case 'r': o->readonly = true; break;
    case 'v': verbose = true; break;
    case OPT_QUEUES:
      o->queues = parse_count ("--queues", optarg, 1, MAX_QUEUES);
      break;
    case OPT_DEPTH:
      o->depth = parse_count ("--depth", optarg, 1, MAX_DEPTH);
      break;
    case OPT_FOREGROUND: o->foreground = true; break;
    case OPT_PIDFILE: o->pidfile = optarg; break;
    case OPT_DELETE:
      o->delete_id = (int) parse_count ("--delete", optarg, 0, 1u << 20);
      break;
    case OPT_HELP: usage (stdout); exit (EXIT_SUCCESS);
    case OPT_VERSION:
      printf ("%s %s\n", PROGRAM_NAME, PACKAGE_VERSION);
      exit (EXIT_SUCCESS);
    default:
      if (!engine_option (PROGRAM_NAME, c, optarg, &o->engine)) {
        usage (stderr);
        exit (EXIT_FAILURE);
      }
      break;
    }
  }
  if (o->delete_id >= 0) {
    if (optind != argc) {
      ublk_error ("--delete takes no IMAGE");
      exit (EXIT_FAILURE);
    }
    return;
  }
  if (optind != argc - 1) {
    ublk_error (optind == argc ? "which image? give one IMAGE"
                               : "only one IMAGE can be served");
    usage (stderr);
    exit (EXIT_FAILURE);
  }
  o->image = argv[optind];
}
