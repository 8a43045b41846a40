/* The timer that ends the wait of writes parked in the engine
 * (zq_parked_expire): a parked write has no thread of its own to time
 * out, so this one looks a few times a second.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "server.h"

#define TICK_NS (100 * 1000 * 1000)

static pthread_mutex_t timer_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t timer_stop_cond;
static bool timer_stop, timer_running;
static pthread_t timer_thread;

static void *
park_timer (void *unused)
{
  struct timespec tick;

  pthread_mutex_lock (&timer_lock);
  while (!timer_stop) {
    clock_gettime (CLOCK_MONOTONIC, &tick);
    tick.tv_nsec += TICK_NS;
    if (tick.tv_nsec >= 1000000000) {
      tick.tv_sec++;
      tick.tv_nsec -= 1000000000;
    }
    if (pthread_cond_timedwait (&timer_stop_cond, &timer_lock, &tick) ==
        ETIMEDOUT) {
      pthread_mutex_unlock (&timer_lock);
      zq_parked_expire (export.img);
      pthread_mutex_lock (&timer_lock);
    }
  }
  pthread_mutex_unlock (&timer_lock);
  return NULL;
}

int
park_timer_start (void)
{
  pthread_condattr_t attr;
  int err;

  if (!export.zoned)
    return 0;
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&timer_stop_cond, &attr);
  pthread_condattr_destroy (&attr);
  err = pthread_create (&timer_thread, NULL, park_timer, NULL);
  if (err != 0) {
    errno = err;
    server_error ("cannot start the timer of parked writes: %m");
    return -1;
  }
  timer_running = true;
  return 0;
}

/* After every connection has closed: nothing can be parked any more. */
void
park_timer_stop (void)
{
  if (!timer_running)
    return;
  pthread_mutex_lock (&timer_lock);
  timer_stop = true;
  pthread_cond_signal (&timer_stop_cond);
  pthread_mutex_unlock (&timer_lock);
  pthread_join (timer_thread, NULL);
  timer_running = false;
}
