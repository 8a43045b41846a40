/* The command line (options.c). */
#ifndef ZQ_SERVER_OPTIONS_H
#define ZQ_SERVER_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine-options.h"

#define DEFAULT_ADDR "127.0.0.1"
#define DEFAULT_PORT "10809"

struct options {
  const char *image;
  bool readonly;
  const char *unix_socket;      /* -U; "-" for a private one */
  const char *port;             /* -p */
  const char *bind_addr;        /* -b */
  struct engine_options engine; /* --backing, --data-file, ... */
  const char *run;
  bool zone_boundary_split;     /* --zone-boundary=split */
};

/* Fills o and export.name from the command line.  Exits with a message
 * on a bad command line, and for --help and --version.
 */
void parse_options (int argc, char *argv[], struct options *o);

#endif /* ZQ_SERVER_OPTIONS_H */
