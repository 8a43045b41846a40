/* Flushes racing with writes, through the engine's API (libzqcow2):
 * writer threads write, zero and trim their own clusters of an image
 * while a flusher thread flushes without pause, with an L2 cache small
 * enough that tables are evicted all the time.  A flush drops meta_lock
 * while it syncs, so this is where its snapshot of dirty tables, pending
 * frees and L1 entries meets concurrent changes.
 *
 *   zq-flushstress [--seed N] [--ops N] [--threads N] [--cache BYTES]
 *                  [--reference RAW] [--crash-after-ms MS]
 *                  [--power-cuts N] [--fail-syncs N] IMAGE
 *
 * The image (a qcow2 image with 4 KiB clusters, made by the caller) is
 * written; --reference writes a raw file with the bytes the image must
 * read as after the run.  --crash-after-ms runs the workload in a child
 * killed with SIGKILL after MS milliseconds (no reference then): the
 * caller checks that the image is still consistent.
 *
 * --power-cuts N (powercut.c) writes N images IMAGE.cut-K of what the
 * disk could hold after a power cut at moments of the run: synced writes
 * plus any subset of the others.  Each must read, block by block, as a
 * version of the block no older than the last flush or FUA write that
 * returned, and no newer than the last write started; the caller runs
 * qemu-img check on them.
 *
 * --fail-syncs N makes every Nth fdatasync of the image fail with EIO
 * (syncing nothing).  Requests and flushes that fail so are tolerated,
 * their blocks' content left open until rewritten; after a clean close
 * the image is reopened and every other block compared.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
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

#include "powercut.h"
#include "zqcow2.h"

#define BLOCK 4096u
#define MAX_THREADS 16
#define MAX_GEN 63              /* versions of one block, for power cuts */
#define MAX_CUTS 64

static struct zq_image *img;
static uint64_t nr_blocks;
static unsigned nr_threads = 4;
static unsigned long ops_per_thread = 2000;
static unsigned long seed = 1;
static uint8_t *reference;      /* the expected content, nr_blocks blocks */
/* A trim is advisory: the engine drops only whole clusters, so a trim
 * reads as zeroes afterwards only when a block is a whole cluster.  With
 * larger clusters the trims become write-zeroes.
 */
static bool trim_zeroes;
static volatile bool writers_done;
static volatile bool failed;

/* Power cuts: each block's versions are numbered (generation 0 is the
 * initial zeroes); zero_gens has bit g set when version g is zeroes.
 * started: the last version whose request was sent; durable: the
 * newest version a flush or FUA has vouched for.
 */
static unsigned nr_cuts;
static uint32_t *started_gen, *completed_gen, *durable_gen;
static uint64_t *zero_gens;
static uint32_t *cut_started[MAX_CUTS], *cut_durable[MAX_CUTS];
static unsigned cuts_made;
static unsigned fail_syncs;
static uint8_t *unknown;        /* a request on the block failed */
static const uint8_t zero_block[BLOCK];

static void
die (const char *what)
{
  fprintf (stderr, "zq-flushstress: %s: %s\n", what, strerror (errno));
  failed = true;
}

/* xorshift64*: each thread its own sequence.  The multiply matters: the
 * low bits of plain xorshift's consecutive outputs depend on each other,
 * which tied each op's kind to its block (no trim ever freed anything).
 */
static uint64_t
next_random (uint64_t *state)
{
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return (x * UINT64_C (0x2545f4914f6cdd1d)) >> 16;
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

/* Version gen of a block: its number and the version, then a byte. */
static void
fill_version (uint8_t *buf, uint64_t block, uint32_t gen)
{
  memset (buf, (int) ((block * 31 + gen) | 1) & 0xff, BLOCK);
  memcpy (buf, &block, sizeof block);
  memcpy (buf + 8, &gen, sizeof gen);
}

static void
raise_to (uint32_t *slot, uint32_t value)
{
  uint32_t old = __atomic_load_n (slot, __ATOMIC_SEQ_CST);
  while (old < value &&
         !__atomic_compare_exchange_n (slot, &old, value, false,
                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
    ;
}

/* A request failed: only injected EIO is expected, and it leaves the
 * block's content open (the data may or may not have been written).
 */
static int
failed_op (uint64_t block)
{
  if (fail_syncs == 0 || errno != EIO)
    return -1;
  unknown[block] = 1;
  return 0;
}

static int
one_op (uint64_t *state, unsigned thread, uint8_t *buf)
{
  uint64_t block = pick_block (state, thread);
  uint64_t offset = block * BLOCK;
  uint8_t *expected = reference + offset;
  unsigned kind = next_random (state) % 16;
  unsigned flags = next_random (state) % 8 == 0 ? ZQ_FUA : 0;
  uint32_t gen = started_gen[block] + 1;

  if (nr_cuts > 0 && kind >= 10 && kind < 12)
    kind = 0;                           /* versions are whole blocks */
  if (kind < 10 || kind >= 12) {
    if (nr_cuts > 0 && gen > MAX_GEN)
      return 0;
    if (kind >= 12 && gen <= MAX_GEN)
      zero_gens[block] |= UINT64_C (1) << gen;
    __atomic_store_n (&started_gen[block], gen, __ATOMIC_SEQ_CST);
  }

  if (kind < 10) {                      /* whole cluster */
    fill_version (buf, block, gen);
    if (zq_pwrite (img, buf, BLOCK, offset, flags) == -1)
      return failed_op (block);
    memcpy (expected, buf, BLOCK);
  }
  else if (kind < 12) {                 /* part of one: copy-on-write */
    uint64_t at = next_random (state) % (BLOCK / 512) * 512;
    memset (buf, (int) (next_random (state) | 1), 512);
    if (zq_pwrite (img, buf, 512, offset + at, flags) == -1)
      return failed_op (block);
    memcpy (expected + at, buf, 512);
    return 0;
  }
  else if (kind < 14 && trim_zeroes) { /* frees the cluster */
    if (zq_trim (img, BLOCK, offset, flags) == -1)
      return failed_op (block);
    memset (expected, 0, BLOCK);
  }
  else {
    if (zq_zero (img, BLOCK, offset, flags | (kind == 15 ? ZQ_MAY_TRIM : 0))
        == -1)
      return failed_op (block);
    memset (expected, 0, BLOCK);
  }
  unknown[block] = 0;
  __atomic_store_n (&completed_gen[block], gen, __ATOMIC_SEQ_CST);
  if (flags & ZQ_FUA)
    raise_to (&durable_gen[block], gen);
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
  uint32_t *covered = calloc (nr_blocks, sizeof *covered);

  (void) arg;
  while (!writers_done && !failed) {
    /* What completed before the flush starts, it makes durable. */
    for (uint64_t b = 0; b < nr_blocks; b++)
      covered[b] = __atomic_load_n (&completed_gen[b], __ATOMIC_SEQ_CST);
    if (zq_flush (img) == -1) {
      if (fail_syncs == 0 || errno != EIO)
        die ("flush");
    }
    else
      for (uint64_t b = 0; b < nr_blocks; b++)
        raise_to (&durable_gen[b], covered[b]);
  }
  free (covered);
  return NULL;
}

/* powercut_image's callback: what each block may read as. */
static void
record_cut (void *opaque)
{
  unsigned k = *(unsigned *) opaque;

  for (uint64_t b = 0; b < nr_blocks; b++) {
    cut_started[k][b] = __atomic_load_n (&started_gen[b], __ATOMIC_SEQ_CST);
    cut_durable[k][b] = __atomic_load_n (&durable_gen[b], __ATOMIC_SEQ_CST);
  }
}

static const char *image_path;

static void *
cutter (void *arg)
{
  uint64_t state = seed * 7 + 3;
  char out[4096];

  (void) arg;
  while (!writers_done && !failed && cuts_made < nr_cuts) {
    struct timespec delay = { 0, (long) (1 + next_random (&state) % 20)
                                 * 1000000 };
    unsigned k = cuts_made;

    nanosleep (&delay, NULL);
    cut_started[k] = malloc (nr_blocks * sizeof (uint32_t));
    cut_durable[k] = malloc (nr_blocks * sizeof (uint32_t));
    snprintf (out, sizeof out, "%s.cut-%u", image_path, k);
    if (cut_started[k] == NULL || cut_durable[k] == NULL ||
        powercut_image (out, &state, record_cut, &k) == -1) {
      die (out);
      break;
    }
    cuts_made++;
  }
  return NULL;
}

/* Whether `data` is a version of `block` between durable and started. */
static bool
version_allowed (const uint8_t *data, uint64_t block, uint32_t durable,
                 uint32_t started)
{
  uint8_t version[BLOCK];
  uint32_t gen;

  if (memcmp (data, zero_block, BLOCK) == 0) {
    for (gen = durable; gen <= started; gen++)
      if (gen == 0 || (zero_gens[block] & (UINT64_C (1) << gen)))
        return true;
    return false;
  }
  memcpy (&gen, data + 8, sizeof gen);
  if (gen < durable || gen > started || gen == 0 ||
      (zero_gens[block] & (UINT64_C (1) << gen)))
    return false;
  fill_version (version, block, gen);
  return memcmp (data, version, BLOCK) == 0;
}

static int
verify_cut (unsigned k)
{
  char path[4096];
  struct zq_open_options options = { .readonly = true, .no_backing = true };
  struct zq_image *cut;
  uint8_t data[BLOCK];
  unsigned bad = 0;

  snprintf (path, sizeof path, "%s.cut-%u", image_path, k);
  options.filename = path;
  cut = zq_open (&options);
  if (cut == NULL) {
    die (path);
    return -1;
  }
  for (uint64_t b = 0; b < nr_blocks; b++) {
    if (zq_pread (cut, data, BLOCK, b * BLOCK) == -1) {
      die (path);
      bad++;
      break;
    }
    if (!version_allowed (data, b, cut_durable[k][b], cut_started[k][b])) {
      uint64_t as_block;
      uint32_t as_gen;
      memcpy (&as_block, data, sizeof as_block);
      memcpy (&as_gen, data + 8, sizeof as_gen);
      if (bad++ < 5)
        fprintf (stderr, "zq-flushstress: %s: block %" PRIu64 " reads as "
                 "none of versions %u..%u (but as %s%" PRIu64 " version %"
                 PRIu32 ")\n", path, b, cut_durable[k][b], cut_started[k][b],
                 memcmp (data, zero_block, BLOCK) == 0 ? "zeroes, " : "block ",
                 as_block, as_gen);
    }
  }
  zq_close (cut);
  return bad ? -1 : 0;
}

/* After a run with failing syncs: the image, closed cleanly, reads as
 * the reference in every block no failed request left open.
 */
static int
verify_image (const char *path)
{
  struct zq_open_options options = {
    .filename = path, .readonly = true, .no_backing = true,
  };
  struct zq_image *image = zq_open (&options);
  uint8_t data[BLOCK];
  uint64_t open_blocks = 0, bad = 0;

  if (image == NULL) {
    die (path);
    return -1;
  }
  for (uint64_t b = 0; b < nr_blocks; b++) {
    if (unknown[b]) {
      open_blocks++;
      continue;
    }
    if (zq_pread (image, data, BLOCK, b * BLOCK) == -1 ||
        memcmp (data, reference + b * BLOCK, BLOCK) != 0) {
      if (bad++ < 5)
        fprintf (stderr, "zq-flushstress: %s: block %" PRIu64 " differs\n",
                 path, b);
    }
  }
  zq_close (image);
  printf ("zq-flushstress: %" PRIu64 " blocks compared, %" PRIu64
          " left open by failed requests\n", nr_blocks - open_blocks,
          open_blocks);
  return bad ? -1 : 0;
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
  pthread_t writers[MAX_THREADS], flush_thread, cut_thread;
  unsigned t;

  img = zq_open (&options);
  if (img == NULL) {
    die (image);
    return -1;
  }
  nr_blocks = zq_virtual_size (img) / BLOCK;
  trim_zeroes = zq_cluster_size (img) == BLOCK;
  reference = calloc (nr_blocks, BLOCK);
  started_gen = calloc (nr_blocks, sizeof *started_gen);
  completed_gen = calloc (nr_blocks, sizeof *completed_gen);
  durable_gen = calloc (nr_blocks, sizeof *durable_gen);
  zero_gens = calloc (nr_blocks, sizeof *zero_gens);
  unknown = calloc (nr_blocks, 1);
  if (reference == NULL || started_gen == NULL || completed_gen == NULL ||
      durable_gen == NULL || zero_gens == NULL || unknown == NULL ||
      zq_pread (img, reference, nr_blocks * BLOCK, 0))
    die ("reading the image");
  if (nr_cuts > 0 || fail_syncs > 0) {
    char shadow[4096];
    snprintf (shadow, sizeof shadow, "%s.shadow", image);
    if (powercut_start (image, shadow) == -1)
      die ("starting the power cut simulation");
    powercut_fail_syncs (fail_syncs);
  }
  if (nr_cuts > 0)
    pthread_create (&cut_thread, NULL, cutter, NULL);
  pthread_create (&flush_thread, NULL, flusher, NULL);
  for (t = 0; t < nr_threads; t++)
    pthread_create (&writers[t], NULL, writer, (void *) (uintptr_t) t);
  for (t = 0; t < nr_threads; t++)
    pthread_join (writers[t], NULL);
  writers_done = true;
  pthread_join (flush_thread, NULL);
  if (nr_cuts > 0)
    pthread_join (cut_thread, NULL);
  powercut_fail_syncs (0);              /* the closing flush succeeds */
  if (zq_close (img) == -1)
    die ("close");
  if (nr_cuts > 0 || fail_syncs > 0)
    powercut_stop ();
  if (fail_syncs > 0 && verify_image (image) == -1)
    failed = true;
  if (nr_cuts > 0) {
    for (unsigned k = 0; k < cuts_made; k++)
      if (verify_cut (k) == -1)
        failed = true;
    printf ("zq-flushstress: %u power cuts checked\n", cuts_made);
  }
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
    { "power-cuts", required_argument, NULL, 'p' },
    { "fail-syncs", required_argument, NULL, 'f' },
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
    case 'p': nr_cuts = (unsigned) strtoul (optarg, NULL, 0); break;
    case 'f': fail_syncs = (unsigned) strtoul (optarg, NULL, 0); break;
    default: return 2;
    }
  }
  if (optind != argc - 1 || nr_threads == 0 || nr_threads > MAX_THREADS ||
      nr_cuts > MAX_CUTS) {
    fprintf (stderr, "usage: zq-flushstress [--seed N] [--ops N] "
             "[--threads N] [--cache BYTES] [--reference RAW] "
             "[--crash-after-ms MS] [--power-cuts N] [--fail-syncs N] "
             "IMAGE\n");
    return 2;
  }
  image_path = realpath (argv[optind], NULL);
  if (image_path == NULL) {
    perror (argv[optind]);
    return 1;
  }
  if (crash_ms >= 0)
    return crash (argv[optind], cache_bytes, (unsigned) crash_ms) == 0 ? 0 : 1;
  if (run (image_path, cache_bytes) == -1)
    return 1;
  if (reference_path && write_reference (reference_path) == -1) {
    die (reference_path);
    return 1;
  }
  return 0;
}
