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
  OPT_RUN = 256,
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
  ENGINE_LONG_OPTIONS,
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
ENGINE_OPTIONS_HELP
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
    default:
      if (!engine_option (PROGRAM_NAME, c, optarg, &o->engine)) {
        usage (stderr);
        exit (EXIT_FAILURE);
      }
      break;
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
