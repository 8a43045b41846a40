/* The futex calls behind wake-word.h.  glibc has no wrapper for futex
 * (2), hence syscall (2); FUTEX_PRIVATE_FLAG, as the words are never
 * shared between processes, keys the wait on the address alone, so a
 * wake of a word whose thread has moved on touches no memory.
 */
#include <config.h>

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "wake-word.h"

void
wake_word_wake (wake_word *w)
{
  syscall (SYS_futex, w, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0);
}

bool
wake_word_sleep (wake_word *w, uint64_t deadline_ns)
{
  struct timespec deadline = {
    .tv_sec = (time_t) (deadline_ns / 1000000000),
    .tv_nsec = (long) (deadline_ns % 1000000000),
  };
  uint32_t armed = WAKE_WORD_ARMED;

  /* Tell the waker it must make the system call: unless it has set the
   * word already.
   */
  if (!atomic_compare_exchange_strong_explicit (w, &armed, WAKE_WORD_SLEEPING,
                                                memory_order_acquire,
                                                memory_order_acquire))
    return armed == WAKE_WORD_SET;
  for (;;) {
    /* FUTEX_WAIT_BITSET takes an absolute deadline, on CLOCK_MONOTONIC
     * unless FUTEX_CLOCK_REALTIME is given.
     */
    long r = syscall (SYS_futex, w, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
                      WAKE_WORD_SLEEPING, deadline_ns ? &deadline : NULL,
                      NULL, FUTEX_BITSET_MATCH_ANY);

    if (wake_word_is_set (w))
      return true;
    if (r == -1 && errno == ETIMEDOUT)
      return false;
    /* A spurious or stale wake, EINTR, or EAGAIN (the word changed on
     * the way in: then it was set, and the check above returned).
     */
  }
}
