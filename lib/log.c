/* Messages, plain file I/O helpers, and the shared buffer of zeroes. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

const uint8_t zq_zero_cluster[ZQ_ZERO_BYTES];

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

int
full_pread (int fd, void *buf, size_t count, uint64_t offset)
{
  uint8_t *p = buf;

  while (count > 0) {
    ssize_t r = pread (fd, p, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {               /* end of file: the rest reads as zeroes */
      memset (p, 0, count);
      return 0;
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

int
full_pwrite (int fd, const void *buf, size_t count, uint64_t offset)
{
  const uint8_t *p = buf;

  while (count > 0) {
    ssize_t r = pwrite (fd, p, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

int
check_request (struct zq_image *img, const char *what,
               uint64_t count, uint64_t offset)
{
  if (offset > img->virtual_size || count > img->virtual_size - offset) {
    zq_log_refusal (img, "%s: %s at offset %" PRIu64 " length %" PRIu64
                    " is past the end of the image (%" PRIu64 " bytes)",
                    img->filename, what, offset, count, img->virtual_size);
    errno = EINVAL;
    return -1;
  }
  return 0;
}
