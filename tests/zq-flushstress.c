/* Flushes racing with writes, through the engine's API (libzqcow2):
 * writer threads write, zero and trim their own clusters of an image
 * while a flusher thread flushes without pause, with an L2 cache small
 * enough that tables are evicted all the time.  A flush drops meta_lock
 * while it syncs, so this is where its snapshot of dirty tables, pending
 * frees and L1 entries meets concurrent changes.
 *
 *   zq-flushstress [--seed N] [--ops N] [--threads N] [--cache BYTES]
 *                  [--reference RAW] [--crash-after-ms MS] IMAGE
 *
 * The image (a qcow2 image with 4 KiB clusters, made by the caller) is
 * written; --reference writes a raw file with the bytes the image must
 * read as after the run.  --crash-after-ms runs the workload in a child
 * killed with SIGKILL after MS milliseconds (no reference then): the
 * caller checks that the image is still consistent.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zqcow2.h"

#define BLOCK 4096u
#define MAX_THREADS 16

static struct zq_image *img;
static uint64_t nr_blocks;
static unsigned nr_threads = 4;
static unsigned long ops_per_thread = 2000;
static unsigned long seed = 1;
static uint8_t *reference;      /* the expected content, nr_blocks blocks */
static volatile bool writers_done;
static volatile bool failed;

static void
die (const char *what)
{
  fprintf (stderr, "zq-flushstress: %s: %s\n", what, strerror (errno));
  failed = true;
}

/* xorshift: each thread its own sequence. */
static uint64_t
next_random (uint64_t *state)
{
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *state = x;
}

/* Blocks are owned round-robin (block % nr_threads), so that threads
 * share every L2 table but never a cluster: the expected content stays
 * exact whatever the interleaving.
 */
static uint64_t
pick_block (uint64_t *state, unsigned thread)
{
  uint64_t per_thread = nr_blocks / nr_threads;
  return (next_random (state) % per_thread) * nr_threads + thread;
}

static int
one_op (uint64_t *state, unsigned thread, uint8_t *buf)
{
  uint64_t block = pick_block (state, thread);
  uint64_t offset = block * BLOCK;
  uint8_t *expected = reference + offset;
  unsigned kind = next_random (state) % 16;
  unsigned flags = next_random (state) % 8 == 0 ? ZQ_FUA : 0;

  if (kind < 10) {                      /* whole cluster */
    memset (buf, (int) (next_random (state) | 1), BLOCK);
    memcpy (buf, &offset, sizeof offset);
    if (zq_pwrite (img, buf, BLOCK, offset, flags) == -1)
      return -1;
    memcpy (expected, buf, BLOCK);
  }
  else if (kind < 12) {                 /* part of one: copy-on-write */
    uint64_t at = next_random (state) % (BLOCK / 512) * 512;
    memset (buf, (int) (next_random (state) | 1), 512);
    if (zq_pwrite (img, buf, 512, offset + at, flags) == -1)
      return -1;
    memcpy (expected + at, buf, 512);
  }
  else if (kind < 14) {                 /* frees the cluster */
    if (zq_trim (img, BLOCK, offset, flags) == -1)
      return -1;
    memset (expected, 0, BLOCK);
  }
  else {
    if (zq_zero (img, BLOCK, offset, flags | (kind == 15 ? ZQ_MAY_TRIM : 0))
        == -1)
      return -1;
    memset (expected, 0, BLOCK);
  }
  return 0;
}

static void *
writer (void *arg)
{
  unsigned thread = (unsigned) (uintptr_t) arg;
  uint64_t state = seed * 0x9e3779b97f4a7c15u + thread + 1;
  uint8_t buf[BLOCK];

  for (unsigned long i = 0; i < ops_per_thread && !failed; i++)
    if (one_op (&state, thread, buf) == -1) {
      die ("write");
      break;
    }
  return NULL;
}

static void *
flusher (void *arg)
{
  (void) arg;
  while (!writers_done && !failed)
    if (zq_flush (img) == -1)
      die ("flush");
  return NULL;
}

static int
write_reference (const char *path)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  size_t done = 0, len = nr_blocks * BLOCK;

  if (fd == -1)
    return -1;
  while (done < len) {
    ssize_t r = write (fd, reference + done, len - done);
    if (r <= 0) {
      close (fd);
      return -1;
    }
    done += r;
  }
  return close (fd);
}

static int
run (const char *image, uint64_t cache_bytes)
{
  struct zq_open_options options = {
    .filename = image, .l2_cache_bytes = cache_bytes, .no_backing = true,
  };
  pthread_t writers[MAX_THREADS], flush_thread;
  unsigned t;

  img = zq_open (&options);
  if (img == NULL) {
    die (image);
    return -1;
  }
  nr_blocks = zq_virtual_size (img) / BLOCK;
  reference = calloc (nr_blocks, BLOCK);
  if (reference == NULL || zq_pread (img, reference, nr_blocks * BLOCK, 0))
    die ("reading the image");
  pthread_create (&flush_thread, NULL, flusher, NULL);
  for (t = 0; t < nr_threads; t++)
    pthread_create (&writers[t], NULL, writer, (void *) (uintptr_t) t);
  for (t = 0; t < nr_threads; t++)
    pthread_join (writers[t], NULL);
  writers_done = true;
  pthread_join (flush_thread, NULL);
  if (zq_close (img) == -1)
    die ("close");
  return failed ? -1 : 0;
}

/* Runs the workload in a child and kills it mid-way. */
static int
crash (const char *image, uint64_t cache_bytes, unsigned ms)
{
  struct timespec delay = { ms / 1000, (long) (ms % 1000) * 1000000 };
  int status;
  pid_t pid = fork ();

  if (pid == -1)
    return -1;
  if (pid == 0) {
    ops_per_thread = ~0ul >> 1;         /* until killed */
    _exit (run (image, cache_bytes) == 0 ? 0 : 1);
  }
  nanosleep (&delay, NULL);
  kill (pid, SIGKILL);
  if (waitpid (pid, &status, 0) == -1)
    return -1;
  if (WIFEXITED (status) && WEXITSTATUS (status) != 0) {
    fprintf (stderr, "zq-flushstress: the workload failed before the kill\n");
    return -1;
  }
  return 0;
}

int
main (int argc, char **argv)
{
  static const struct option long_options[] = {
    { "seed", required_argument, NULL, 's' },
    { "ops", required_argument, NULL, 'o' },
    { "threads", required_argument, NULL, 't' },
    { "cache", required_argument, NULL, 'c' },
    { "reference", required_argument, NULL, 'r' },
    { "crash-after-ms", required_argument, NULL, 'k' },
    { NULL, 0, NULL, 0 },
  };
  const char *reference_path = NULL;
  uint64_t cache_bytes = 8192;
  long crash_ms = -1;
  int c;

  while ((c = getopt_long (argc, argv, "", long_options, NULL)) != -1) {
    switch (c) {
    case 's': seed = strtoul (optarg, NULL, 0); break;
    case 'o': ops_per_thread = strtoul (optarg, NULL, 0); break;
    case 't': nr_threads = (unsigned) strtoul (optarg, NULL, 0); break;
    case 'c': cache_bytes = strtoull (optarg, NULL, 0); break;
    case 'r': reference_path = optarg; break;
    case 'k': crash_ms = strtol (optarg, NULL, 0); break;
    default: return 2;
    }
  }
  if (optind != argc - 1 || nr_threads == 0 || nr_threads > MAX_THREADS) {
    fprintf (stderr, "usage: zq-flushstress [--seed N] [--ops N] "
             "[--threads N] [--cache BYTES] [--reference RAW] "
             "[--crash-after-ms MS] IMAGE\n");
    return 2;
  }
  if (crash_ms >= 0)
    return crash (argv[optind], cache_bytes, (unsigned) crash_ms) == 0 ? 0 : 1;
  if (run (argv[optind], cache_bytes) == -1)
    return 1;
  if (reference_path && write_reference (reference_path) == -1) {
    die (reference_path);
    return 1;
  }
  return 0;
}
