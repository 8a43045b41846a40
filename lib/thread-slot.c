/* Per-thread state: one pthread key for all slots. */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "thread-slot.h"

struct thread_slots {
  void *object[NR_THREAD_SLOTS];
  void (*destroy[NR_THREAD_SLOTS]) (void *);
};

static pthread_key_t thread_slots_key;
static pthread_once_t thread_slots_once = PTHREAD_ONCE_INIT;

static void
destroy_thread_slots (void *p)
{
  struct thread_slots *slots = p;

  for (int i = 0; i < NR_THREAD_SLOTS; i++)
    if (slots->object[i] != NULL)
      slots->destroy[i] (slots->object[i]);
  free (slots);
}

static void
make_thread_slots_key (void)
{
  pthread_key_create (&thread_slots_key, destroy_thread_slots);
}

void *
thread_slot_get (enum thread_slot slot, void *(*create) (void),
                 void (*destroy) (void *))
{
  struct thread_slots *slots;

  pthread_once (&thread_slots_once, make_thread_slots_key);
  slots = pthread_getspecific (thread_slots_key);
  if (slots == NULL) {
    slots = calloc (1, sizeof *slots);
    if (slots == NULL)
      return NULL;
    if ((errno = pthread_setspecific (thread_slots_key, slots)) != 0) {
      free (slots);
      return NULL;
    }
  }
  if (slots->object[slot] == NULL) {
    slots->object[slot] = create ();
    slots->destroy[slot] = destroy;
  }
  return slots->object[slot];
}
