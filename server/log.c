/* Messages to stderr, the engine's and the server's alike, each line
 * prefixed with the program name so that they stand out among a client's
 * own output in --run mode.
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "server.h"

bool verbose;

/* What the engine last reported on this thread as an error, or at the
 * debug level (where refusals go beyond a few a second: the last message
 * of a refused request says why).  Workers send it back with the error
 * reply, so the client sees why its request was refused, not only the
 * errno.
 */
static __thread char last_engine_error[512];

static void
vlog (const char *prefix, const char *fs, va_list args)
{
  char message[1024];

  vsnprintf (message, sizeof message, fs, args);
  /* One call, so that lines from different threads never interleave. */
  fprintf (stderr, "%s: %s%s\n", PROGRAM_NAME, prefix, message);
}

void
server_error (const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  vlog ("", fs, args);
  va_end (args);
}

void
server_debug (const char *fs, ...)
{
  va_list args;

  if (!verbose)
    return;
  va_start (args, fs);
  vlog ("debug: ", fs, args);
  va_end (args);
}

void
engine_log (enum zq_log_level level, const char *message)
{
  switch (level) {
  case ZQ_LOG_ERROR:
    fprintf (stderr, "%s: %s\n", PROGRAM_NAME, message);
    snprintf (last_engine_error, sizeof last_engine_error, "%s", message);
    break;
  case ZQ_LOG_WARNING:
    fprintf (stderr, "%s: warning: %s\n", PROGRAM_NAME, message);
    break;
  case ZQ_LOG_DEBUG:
    if (verbose)
      fprintf (stderr, "%s: debug: %s\n", PROGRAM_NAME, message);
    snprintf (last_engine_error, sizeof last_engine_error, "%s", message);
    break;
  }
}

void
engine_error_clear (void)
{
  last_engine_error[0] = '\0';
}

const char *
engine_error_message (void)
{
  return last_engine_error;
}
