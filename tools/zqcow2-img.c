/* zqcow2-img: create, inspect, check and manage zoned qcow2 images
 * offline, in the manner of qemu-img and blkzone.
 *
 * This file picks the command; each command has its own file
 * (img-commands.h lists them), and what they share is in img-util.c.
 * The commands parse their arguments and call the engine (lib/zqcow2.h);
 * the rules about images and zones all live there.  Errors are one line
 * on stderr naming what was wrong, with exit status 1 (check has its own
 * statuses, as qemu-img check does).
 */
#include <config.h>

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zqcow2.h"
#include "img-commands.h"
#include "img-util.h"

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

/* In the order the usage lists them. */
static const struct command *const commands[] = {
  &create_command, &info_command, &check_command, &zones_command,
  &zone_command,
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
    if (!strcmp (argv[1], commands[k]->name)) {
      /* Each command parses its own options, its name as argv[0]. */
      struct command_line cl = {
        .command = commands[k], .argc = argc - 1, .argv = argv + 1,
      };

      opterr = 0;
      optind = 0;
      return commands[k]->run (&cl);
    }
  }
  usage_error (NULL, "unknown command '%s'", argv[1]);
}
