/* Guest range locks; see range-lock.h.  The list of held ranges is as
 * long as the number of requests in flight, a few dozen at most, so a
 * linear scan is the simple and fast choice.
 */
#include <config.h>

#include "range-lock.h"

void
range_lock_init (range_lock_t *rl)
{
  pthread_mutex_init (&rl->mutex, NULL);
  pthread_cond_init (&rl->released, NULL);
  rl->held = NULL;
}

void
range_lock_destroy (range_lock_t *rl)
{
  pthread_cond_destroy (&rl->released);
  pthread_mutex_destroy (&rl->mutex);
}

static bool
conflicts (const range_lock_t *rl, const struct range_lock_node *node)
{
  const struct range_lock_node *h;

  for (h = rl->held; h != NULL; h = h->next)
    if (h->start < node->end && node->start < h->end &&
        (h->exclusive || node->exclusive))
      return true;
  return false;
}

void
range_lock_acquire (range_lock_t *rl, struct range_lock_node *node,
                    uint64_t start, uint64_t end, bool exclusive)
{
  node->start = start;
  node->end = end;
  node->exclusive = exclusive;
  pthread_mutex_lock (&rl->mutex);
  while (conflicts (rl, node))
    pthread_cond_wait (&rl->released, &rl->mutex);
  node->next = rl->held;
  rl->held = node;
  pthread_mutex_unlock (&rl->mutex);
}

void
range_lock_release (range_lock_t *rl, struct range_lock_node *node)
{
  struct range_lock_node **link;

  pthread_mutex_lock (&rl->mutex);
  for (link = &rl->held; *link != node; link = &(*link)->next)
    ;
  *link = node->next;
  pthread_cond_broadcast (&rl->released);
  pthread_mutex_unlock (&rl->mutex);
}
