/* The command line: options, their checks, --help and --version. */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "server.h"

enum {
  OPT_L2_CACHE_SIZE = 256,
  OPT_OFFLINE_ZONES,
  OPT_READONLY_ZONES,
  OPT_BACKING,
  OPT_DATA_FILE,
  OPT_RUN,
  OPT_ZONE_BOUNDARY,
  OPT_HELP,
  OPT_VERSION,
};

static const struct option long_options[] = {
  { "readonly", no_argument, NULL, 'r' },
  { "read-only", no_argument, NULL, 'r' },
  { "unix", required_argument, NULL, 'U' },
  { "port", required_argument, NULL, 'p' },
  { "bind", required_argument, NULL, 'b' },
  { "export-name", required_argument, NULL, 'e' },
  { "l2-cache-size", required_argument, NULL, OPT_L2_CACHE_SIZE },
  { "offline-zones", required_argument, NULL, OPT_OFFLINE_ZONES },
  { "readonly-zones", required_argument, NULL, OPT_READONLY_ZONES },
  { "backing", required_argument, NULL, OPT_BACKING },
  { "data-file", required_argument, NULL, OPT_DATA_FILE },
  { "run", required_argument, NULL, OPT_RUN },
  { "zone-boundary", required_argument, NULL, OPT_ZONE_BOUNDARY },
  { "allocation-depth", no_argument, NULL, 'A' },
  { "verbose", no_argument, NULL, 'v' },
  { "help", no_argument, NULL, OPT_HELP },
  { "version", no_argument, NULL, OPT_VERSION },
  { NULL, 0, NULL, 0 },
};

static void
usage (FILE *out)
{
  fprintf (out,
"Usage: %s [-r] [-U SOCKET | -p PORT [-b ADDR]] [-e EXPORTNAME]\n"
"           [--backing FILE|none] [--data-file FILE] [--l2-cache-size SIZE]\n"
"           [--offline-zones LIST] [--readonly-zones LIST]\n"
"           [--zone-boundary refuse|split] [--run CMD] [-A] [-v]\n"
"           IMAGE\n"
"Serve a qcow2 image, zoned or not, over NBD.\n"
"\n"
"  -r, --readonly         refuse writes; the image file is never modified\n"
"  -U, --unix SOCKET      listen on a Unix socket (\"-\": a private one)\n"
"  -p, --port PORT        listen on this TCP port (default %s)\n"
"  -b, --bind ADDR        listen on this address (default %s)\n"
"  -e, --export-name NAME the export's name (default \"\")\n"
"      --backing FILE|none   this backing file instead of the image's, or none\n"
"      --data-file FILE      this external data file instead of the image's\n"
"      --l2-cache-size SIZE  memory for cached L2 tables (e.g. 4M)\n"
"      --offline-zones LIST  zones to report offline (e.g. 3,7-9)\n"
"      --readonly-zones LIST zones to report read-only\n"
"      --zone-boundary split accept writes crossing zone boundaries when\n"
"                            each piece is valid in its zone (default:\n"
"                            refuse, as ZBC does)\n"
"      --run CMD          run CMD with $uri set, serve until it exits,\n"
"                         and exit with its status\n"
"  -A, --allocation-depth accepted as qemu-nbd takes it; qemu:allocation-depth\n"
"                         and qemu:joint-allocation are always published\n"
"  -v, --verbose          debug messages\n"
"      --help, --version\n"
"\n"
"Without -U or -p, a socket passed by systemd socket activation is used\n"
"if there is one, else TCP %s:%s.  See zqcow2-nbd(1).\n",
           PROGRAM_NAME, DEFAULT_PORT, DEFAULT_ADDR, DEFAULT_ADDR,
           DEFAULT_PORT);
}

/* SIZE with an optional binary suffix: 512, 64K, 4M, 1G. */
static int
parse_size (const char *arg, uint64_t *size)
{
  char *end;
  unsigned long long n;
  unsigned shift = 0;

  errno = 0;
  n = strtoull (arg, &end, 10);
  if (errno != 0 || end == arg || arg[0] == '-')
    return -1;
  switch (*end) {
  case '\0': break;
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  case 't': case 'T': shift = 40; end++; break;
  default: return -1;
  }
  if (*end != '\0' || n > (UINT64_MAX >> shift))
    return -1;
  *size = (uint64_t) n << shift;
  return 0;
}

void
parse_options (int argc, char *argv[], struct options *o)
{
  int c;

  export.name = "";
  while ((c = getopt_long (argc, argv, "rU:p:b:e:Av", long_options,
                           NULL)) != -1) {
    switch (c) {
    case 'r': o->readonly = true; break;
    case 'U': o->unix_socket = optarg; break;
    case 'p': o->port = optarg; break;
    case 'b': o->bind_addr = optarg; break;
    case 'e':
      if (strlen (optarg) > 4096) {
        server_error ("-e: the export name is longer than NBD allows "
                      "(4096 bytes)");
        exit (EXIT_FAILURE);
      }
      export.name = optarg;
      break;
    case 'v': verbose = true; break;
    case 'A': break;            /* the contexts are always published */
    case OPT_L2_CACHE_SIZE:
      if (parse_size (optarg, &o->l2_cache_bytes) == -1) {
        server_error ("--l2-cache-size %s: not a size (e.g. 512K, 4M)",
                      optarg);
        exit (EXIT_FAILURE);
      }
      break;
    case OPT_OFFLINE_ZONES: o->offline_zones = optarg; break;
    case OPT_READONLY_ZONES: o->readonly_zones = optarg; break;
    case OPT_BACKING: o->backing = optarg; break;
    case OPT_DATA_FILE: o->data_file = optarg; break;
    case OPT_RUN: o->run = optarg; break;
    case OPT_ZONE_BOUNDARY:
      if (strcmp (optarg, "split") != 0 && strcmp (optarg, "refuse") != 0) {
        server_error ("--zone-boundary %s: not refuse or split", optarg);
        exit (EXIT_FAILURE);
      }
      o->zone_boundary_split = strcmp (optarg, "split") == 0;
      break;
    case OPT_HELP: usage (stdout); exit (EXIT_SUCCESS);
    case OPT_VERSION:
      printf ("%s %s\n", PROGRAM_NAME, PACKAGE_VERSION);
      exit (EXIT_SUCCESS);
    default: usage (stderr); exit (EXIT_FAILURE);
    }
  }
  if (optind != argc - 1) {
    server_error (optind == argc ? "which image? give one IMAGE"
                                 : "only one IMAGE can be served");
    usage (stderr);
    exit (EXIT_FAILURE);
  }
  o->image = argv[optind];
  if (o->unix_socket && o->port) {
    server_error ("-U and -p cannot be used together");
    exit (EXIT_FAILURE);
  }
  if (o->bind_addr && o->unix_socket) {
    server_error ("-b goes with TCP (-p), not with -U");
    exit (EXIT_FAILURE);
  }
}
