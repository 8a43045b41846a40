/* The one export every connection serves: opening the engine and filling
 * in struct export.  Apart from main.c so that a harness (tests/fuzz) can
 * serve connections without a listener or a command line.
 */
#include <config.h>

#include "options.h"
#include "server.h"

struct export export;
atomic_bool shutting_down;

/* Opens the engine and fills in the export. */
int
export_open (const struct options *o)
{
  struct zq_open_options open_options =
    engine_open_options (&o->engine, o->image, o->readonly);
  struct zq_zone_geometry geometry;
  struct zq_block_limits limits;

  open_options.zone_boundary_split = o->zone_boundary_split;
  export.img = zq_open (&open_options);
  if (export.img == NULL)
    return -1;                  /* the engine said why */
  export.size = zq_virtual_size (export.img);
  export.description = zq_description (export.img);
  if (export.description == NULL)
    export.description = "";
  export.readonly = o->readonly || zq_is_readonly (export.img);
  export.zoned = zq_is_zoned (export.img);
  if (export.zoned) {
    if (zq_zone_geometry (export.img, &geometry) == -1)
      return -1;
    export.zone_shift = geometry.zone_shift;
  }
  else if (o->engine.offline_zones || o->engine.readonly_zones)
    server_error ("warning: %s is not zoned; --offline-zones and "
                  "--readonly-zones do nothing", o->image);

  /* The engine's limits, lowered to what one request buffer holds. */
  zq_block_limits (export.img, &limits);
  export.min_block = limits.minimum;
  export.preferred_block = limits.preferred < MAX_REQUEST_BYTES
                           ? limits.preferred : MAX_REQUEST_BYTES;
  export.max_block = limits.maximum < MAX_REQUEST_BYTES
                     ? limits.maximum : MAX_REQUEST_BYTES;
  return 0;
}

