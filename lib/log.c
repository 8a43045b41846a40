/* Messages: the engine's log function and the "FILE: message" helpers.
 * File I/O is in file-io.c, the request checks in requests.c.
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static void
default_log (enum zq_log_level level, const char *message)
{
  if (level == ZQ_LOG_DEBUG)
    return;
  fprintf (stderr, "zqcow2: %s%s\n",
           level == ZQ_LOG_WARNING ? "warning: " : "", message);
}

static zq_log_fn log_fn = default_log;

void
zq_set_log_fn (zq_log_fn fn)
{
  log_fn = fn ? fn : default_log;
}

/* Formats and passes on one message, "FILE: message" if there is a
 * file, keeping errno: callers log, then return errno.
 */
static void log_message (enum zq_log_level level, const char *filename,
                         const char *fs, va_list args)
  __attribute__ ((format (printf, 3, 0)));

static void
log_message (enum zq_log_level level, const char *filename,
             const char *fs, va_list args)
{
  char message[1024];
  int saved_errno = errno;
  int len = 0;

  if (filename)
    len = snprintf (message, sizeof message, "%s: ", filename);
  if (len >= 0 && (size_t) len < sizeof message)
    vsnprintf (message + len, sizeof message - len, fs, args);
  log_fn (level, message);
  errno = saved_errno;
}

void
zq_log (enum zq_log_level level, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  log_message (level, NULL, fs, args);
  va_end (args);
}

void
zq_file_error (const char *filename, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  log_message (ZQ_LOG_ERROR, filename, fs, args);
  va_end (args);
}

int
zq_refuse (const char *filename, int err, const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  log_message (ZQ_LOG_ERROR, filename, fs, args);
  va_end (args);
  errno = err;
  return -1;
}
