/* The engine's command-line options (engine-options.h). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-options.h"

int
engine_parse_size (const char *arg, uint64_t *size)
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

bool
engine_option (const char *program, int c, const char *arg,
               struct engine_options *eo)
{
  switch (c) {
  case ENGINE_OPT_L2_CACHE_SIZE:
    if (engine_parse_size (arg, &eo->l2_cache_bytes) == -1) {
      fprintf (stderr, "%s: --l2-cache-size %s: not a size (e.g. 512K, 4M)\n",
               program, arg);
      exit (EXIT_FAILURE);
    }
    return true;
  case ENGINE_OPT_OFFLINE_ZONES: eo->offline_zones = arg; return true;
  case ENGINE_OPT_READONLY_ZONES: eo->readonly_zones = arg; return true;
  case ENGINE_OPT_BACKING: eo->backing = arg; return true;
  case ENGINE_OPT_DATA_FILE: eo->data_file = arg; return true;
  default: return false;
  }
}

struct zq_open_options
engine_open_options (const struct engine_options *eo, const char *image,
                     bool readonly)
{
  bool no_backing = eo->backing && strcmp (eo->backing, "none") == 0;

  return (struct zq_open_options) {
    .filename = image,
    .data_file = eo->data_file,
    .readonly = readonly,
    .l2_cache_bytes = eo->l2_cache_bytes,
    .offline_zones = eo->offline_zones,
    .readonly_zones = eo->readonly_zones,
    .backing_file = no_backing ? NULL : eo->backing,
    .no_backing = no_backing,
  };
}
