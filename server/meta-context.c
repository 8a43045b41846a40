/* The metadata context table (meta-context.h).
 *
 * qemu:allocation-depth and qemu:joint-allocation are published on every
 * export, as base:allocation is: a context costs nothing until a client
 * selects it, and a client that wants it need not know of a server
 * option (qemu-nbd publishes allocation-depth only with -A; zqcow2-nbd
 * takes -A and ignores it).  qemu:zone-state exists on zoned exports.
 */
#include <config.h>

#include <string.h>

#include "meta-context.h"
#include "server.h"

static const struct {
  const char *name;
  size_t namespace_len;         /* "base:", "qemu:" */
  bool zoned_only;
} contexts[NR_META_CONTEXTS] = {
  [CTX_BASE_ALLOCATION] = { "base:allocation", 5, false },
  [CTX_ZONE_STATE] = { "qemu:zone-state", 5, true },
  [CTX_ALLOCATION_DEPTH] = { "qemu:allocation-depth", 5, false },
  [CTX_JOINT_ALLOCATION] = { "qemu:joint-allocation", 5, false },
};

const char *
meta_context_name (enum meta_context c)
{
  return contexts[c].name;
}

unsigned
meta_contexts_published (void)
{
  unsigned set = 0;
  int c;

  for (c = 0; c < NR_META_CONTEXTS; c++)
    if (export.zoned || !contexts[c].zoned_only)
      set |= CTX_BIT (c);
  return set;
}

unsigned
meta_context_query (const uint8_t *query, uint32_t len, bool list)
{
  unsigned published = meta_contexts_published ();
  unsigned found = 0;
  int c;

  for (c = 0; c < NR_META_CONTEXTS; c++) {
    const char *name = contexts[c].name;

    if (!(published & CTX_BIT (c)))
      continue;
    if ((len == strlen (name) && memcmp (query, name, len) == 0) ||
        (list && len == contexts[c].namespace_len &&
         memcmp (query, name, len) == 0))
      found |= CTX_BIT (c);
  }
  return found;
}
