/* Helpers for the libFuzzer harnesses (fuzz-common.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz-common.h"
#include "zqcow2.h"

static char dir[4096];

static void
remove_dir (void)
{
  char cmd[4200];

  /* Only the files the harnesses made live there. */
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system (cmd) != 0)
    fprintf (stderr, "fuzz: could not remove %s\n", dir);
}

const char *
fuzz_dir (void)
{
  const char *tmp;

  if (dir[0] != '\0')
    return dir;
  tmp = getenv ("TMPDIR");
  if (tmp == NULL || tmp[0] == '\0')
    tmp = access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf (dir, sizeof dir, "%s/zqcow2-fuzz.XXXXXX", tmp);
  if (mkdtemp (dir) == NULL) {
    perror ("fuzz: mkdtemp");
    abort ();
  }
  atexit (remove_dir);
  return dir;
}

const char *
fuzz_path (char *buf, const char *name)
{
  snprintf (buf, 4096, "%s/%s", fuzz_dir (), name);
  return buf;
}

void
fuzz_write_file (const char *path, const uint8_t *data, size_t size)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  size_t done = 0;

  if (fd == -1) {
    perror (path);
    abort ();
  }
  while (done < size) {
    ssize_t r = write (fd, data + done, size - done);
    if (r <= 0) {
      perror (path);
      abort ();
    }
    done += r;
  }
  close (fd);
}

void
fuzz_assert_file_is (const char *path, const uint8_t *data, size_t size,
                     const char *what)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  uint8_t buf[65536];
  size_t pos = 0;
  ssize_t r;

  if (fd == -1) {
    perror (path);
    abort ();
  }
  while ((r = read (fd, buf, sizeof buf)) > 0) {
    if (pos + r > size || memcmp (buf, data + pos, r) != 0) {
      fprintf (stderr, "fuzz: %s: %s changed the file's bytes near offset "
               "%zu\n", path, what, pos);
      abort ();
    }
    pos += r;
  }
  close (fd);
  if (r == -1 || pos != size) {
    fprintf (stderr, "fuzz: %s: %s changed the file's size from %zu to "
             "%zu\n", path, what, size, pos);
    abort ();
  }
}

static int verbose = -1;

static void
quiet_log (enum zq_log_level level, const char *message)
{
  /* strlen reads every byte of the message: ASan sees a bad one. */
  size_t len = strlen (message);

  if (verbose)
    fprintf (stderr, "zqcow2[%d]: %.*s\n", (int) level, (int) len, message);
}

void
fuzz_quiet_engine (void)
{
  const char *v = getenv ("FUZZ_VERBOSE");

  verbose = v && v[0] == '1';
  zq_set_log_fn (quiet_log);
}

int
fuzz_wants_data_file (const uint8_t *data, size_t size)
{
  /* Version at 4, incompatible_features at 72, both big-endian. */
  return size >= 80 && data[4] == 0 && data[5] == 0 && data[6] == 0 &&
    data[7] >= 3 && (data[79] & 4) != 0;
}

/* As outside ASan, an allocation too large for the machine fails with
 * NULL, which the engine must handle (ENOMEM): that is what is fuzzed,
 * not ASan's own limit.
 */
const char *__asan_default_options (void);
const char *
__asan_default_options (void)
{
  return "allocator_may_return_null=1";
}
