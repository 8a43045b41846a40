/* A wake word: one thread sleeps on it until another sets it, with a
 * futex as the only kernel object, so that setting a word nobody sleeps
 * on costs no system call and a sleeper is woken without first taking
 * the mutex the waker holds (as a condition variable's waiter must).
 *
 * The sleeper arms its word while it holds the lock guarding the
 * condition it waits for, releases the lock, and sleeps until the word
 * is set.  A waker sets the word under that lock and, if the sleeper may
 * be asleep, wakes it: at once, or after releasing the lock (a wake
 * list, see zone-io.c), so that the sleeper does not wake up only to
 * block on the lock.
 *
 * A deferred wake can reach a word whose sleeper has already returned,
 * so whatever then lives at that address gets a spurious wake.  Every
 * futex user in the process (glibc's mutexes and condition variables,
 * and wake_word_sleep below) treats a wake as a hint and checks its
 * value again, so this costs at most a wasted loop.
 */
#ifndef ZQ_WAKE_WORD_H
#define ZQ_WAKE_WORD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum {
  WAKE_WORD_ARMED = 0,          /* set by the sleeper: waiting to be set */
  WAKE_WORD_SET = 1,            /* set by the waker */
  WAKE_WORD_SLEEPING = 2,       /* armed, and its sleeper is in the kernel */
};

typedef _Atomic uint32_t wake_word;

/* Under the lock of the condition waited for. */
static inline void
wake_word_arm (wake_word *w)
{
  atomic_store_explicit (w, WAKE_WORD_ARMED, memory_order_relaxed);
}

/* Whether the word is set; what the waker wrote before setting it is
 * then visible.
 */
static inline bool
wake_word_is_set (wake_word *w)
{
  return atomic_load_explicit (w, memory_order_acquire) == WAKE_WORD_SET;
}

/* Sets the word, under the lock of the condition.  Returns whether its
 * sleeper may be in the kernel, so must be woken with wake_word_wake.
 */
static inline bool
wake_word_set (wake_word *w)
{
  return atomic_exchange_explicit (w, WAKE_WORD_SET, memory_order_release) ==
         WAKE_WORD_SLEEPING;
}

/* Wakes the sleeper of a word that wake_word_set said may sleep.  The
 * lock need not be held.
 */
void wake_word_wake (wake_word *w);

/* Sleeps, without the lock, until the word is set or the deadline (in
 * CLOCK_MONOTONIC ns; 0: none) passes.  Returns true if it was set.
 */
bool wake_word_sleep (wake_word *w, uint64_t deadline_ns);

#endif /* ZQ_WAKE_WORD_H */
