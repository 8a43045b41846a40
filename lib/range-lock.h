/* Locks on ranges of guest bytes, so that requests touching different
 * clusters run in parallel and requests touching the same ones take turns.
 * Shared holders only need the mapping of their clusters to hold still:
 * reads, and writes into clusters allocated to the image alone
 * (qcow2_write).  Whatever changes the mapping (allocation, copy on
 * write, zeroes, trims) holds its clusters alone.
 *
 * Each waiter keeps its node on its own stack: no allocation per request.
 */
#ifndef ZQ_RANGE_LOCK_H
#define ZQ_RANGE_LOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct range_lock_node {
  uint64_t start, end;          /* [start, end) */
  bool exclusive;
  struct range_lock_node *next;
};

typedef struct {
  pthread_mutex_t mutex;
  pthread_cond_t released;
  struct range_lock_node *held;
} range_lock_t;

void range_lock_init (range_lock_t *rl);
void range_lock_destroy (range_lock_t *rl);
void range_lock_acquire (range_lock_t *rl, struct range_lock_node *node,
                         uint64_t start, uint64_t end, bool exclusive);
void range_lock_release (range_lock_t *rl, struct range_lock_node *node);

#endif /* ZQ_RANGE_LOCK_H */
