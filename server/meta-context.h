/* The metadata contexts zqcow2-nbd publishes: their names, the ids it
 * hands out for them, and which of them a query names.
 */
#ifndef ZQ_SERVER_META_CONTEXT_H
#define ZQ_SERVER_META_CONTEXT_H

#include <stdbool.h>
#include <stdint.h>

/* In the order they are listed and their chunks are sent. */
enum meta_context {
  CTX_BASE_ALLOCATION,          /* NBD's: holes and zeroes */
  CTX_ZONE_STATE,               /* nbd-zones.md, zoned exports only */
  CTX_ALLOCATION_DEPTH,         /* qemu's: the providing layer */
  CTX_JOINT_ALLOCATION,         /* both of the above in one */
  NR_META_CONTEXTS
};

/* A set of contexts: one bit each. */
#define CTX_BIT(c) (1u << (c))

/* qemu:joint-allocation status bits: HOLE and ZERO as base:allocation
 * (NBD_STATE_HOLE, NBD_STATE_ZERO), and where the bytes come from.
 */
#define JOINT_ALLOCATION_LOCAL   (1u << 2) /* the image itself: depth 1 */
#define JOINT_ALLOCATION_BACKING (1u << 3) /* a backing file: depth >= 2 */

const char *meta_context_name (enum meta_context c);

/* The id of context c in NBD_OPT_SET_META_CONTEXT replies and in block
 * status chunks.
 */
static inline uint32_t
meta_context_id (enum meta_context c)
{
  return (uint32_t) c + 1;
}

/* The contexts a query names on this export.  LIST also takes a bare
 * namespace ("base:", "qemu:") for every context in it; SET only takes
 * exact names.  Unknown queries name nothing.  The empty LIST query is
 * the caller's: meta_contexts_published.
 */
unsigned meta_context_query (const uint8_t *query, uint32_t len, bool list);

/* Every context this export publishes. */
unsigned meta_contexts_published (void);

#endif /* ZQ_SERVER_META_CONTEXT_H */
