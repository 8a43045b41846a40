/* Refused requests in the log, at a bounded rate.  A client decides how
 * many requests are refused (writes off the write pointer, into a full
 * zone, past the end...), so each image logs at most
 * REFUSALS_LOGGED_PER_SECOND of them a second as errors; the others go
 * to the debug level, and their number is logged as an error with the
 * next refusal logged so (or at close).  Errors that mean the image or
 * the server is in trouble do not come here: they are always logged.
 *
 * One mutex for every image's count, held for a few instructions only:
 * refusals are rare next to requests that succeed, and the message is
 * formatted and passed on outside it.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "internal.h"

#define REFUSALS_LOGGED_PER_SECOND 10

static pthread_mutex_t refusal_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t
monotonic_second (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec;
}

static void
log_suppressed (const struct zq_image *img, uint64_t suppressed)
{
  if (suppressed > 0)
    zq_error ("%s: %" PRIu64 " more refused request%s logged at debug "
              "level only (at most %d a second are logged as errors)",
              img->filename, suppressed,
              suppressed == 1 ? " was" : "s were",
              REFUSALS_LOGGED_PER_SECOND);
}

void
zq_log_refusal (struct zq_image *img, const char *fs, ...)
{
  struct refusal_rate *rate = &img->refusals;
  uint64_t second = monotonic_second (), suppressed = 0;
  enum zq_log_level level = ZQ_LOG_DEBUG;
  int saved_errno = errno;
  char message[1024];
  va_list args;

  pthread_mutex_lock (&refusal_lock);
  if (rate->second != second) {
    rate->second = second;
    rate->logged = 0;
  }
  if (rate->logged < REFUSALS_LOGGED_PER_SECOND) {
    rate->logged++;
    level = ZQ_LOG_ERROR;
    suppressed = rate->suppressed;
    rate->suppressed = 0;
  }
  else
    rate->suppressed++;
  pthread_mutex_unlock (&refusal_lock);

  log_suppressed (img, suppressed);
  errno = saved_errno;          /* for a %m in fs */
  va_start (args, fs);
  vsnprintf (message, sizeof message, fs, args);
  va_end (args);
  zq_log (level, "%s", message);
  errno = saved_errno;
}

void
refusal_log_flush (struct zq_image *img)
{
  uint64_t suppressed;

  pthread_mutex_lock (&refusal_lock);
  suppressed = img->refusals.suppressed;
  img->refusals.suppressed = 0;
  pthread_mutex_unlock (&refusal_lock);
  log_suppressed (img, suppressed);
}
