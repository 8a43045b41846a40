/* zq-workload: a seeded random I/O workload against an NBD export,
 * mirrored into a raw reference file and checked against it.
 *
 *   zq-workload --seed N --ops N --connections K --reference FILE
 *               --cluster-size BYTES [--trim-keeps-data] URI
 *
 * K connections, one thread each, every thread on its own region of the
 * export (regions are disjoint and 4 MiB aligned, so the reference file
 * needs no locking).  Each thread runs ops/K operations: unaligned writes
 * of 1 byte to 4 MiB, trims, write-zeroes (with and without NO_HOLE, some
 * with FUA), flushes and reads; every read is compared with the reference,
 * and at the end each thread reads back its whole region.
 *
 * The reference models the engine's contract: write and write-zeroes
 * change exactly the bytes they name; a trim releases only the clusters it
 * covers completely (they read back as zeroes) and leaves partial clusters
 * alone.  With --trim-keeps-data a trim changes nothing (the engine's
 * contract for version 2 images with a backing file, which have no zero
 * flag to hide the backing data with).
 *
 * The reference may start with data (e.g. the image's content through its
 * backing chain): it must then equal what the export reads.
 *
 * The run is deterministic for a given seed and K: thread i draws from its
 * own generator seeded from seed + i.
 *
 * Exit status: 0 all reads matched, 1 a mismatch or an error, 2 usage.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libnbd.h>

#define MAX_IO (4u * 1024 * 1024)
#define REGION_ALIGN (4u * 1024 * 1024)

enum op_kind {
  OP_WRITE, OP_READ, OP_TRIM, OP_ZERO, OP_FLUSH, NR_OPS
};
static const char *op_names[NR_OPS] = {
  "write", "read", "trim", "zero", "flush"
};

struct worker {
  pthread_t thread;
  unsigned index;
  const char *uri;
  struct nbd_handle *nbd;
  uint64_t region_start, region_end;
  uint64_t nr_ops;
  uint64_t rng;                 /* xorshift64* state */
  unsigned char *io_buf;        /* MAX_IO bytes */
  unsigned char *ref_buf;       /* MAX_IO bytes */
  /* results */
  uint64_t count[NR_OPS];
  uint64_t zero_no_hole, fua, bytes_verified, trimmed_clusters;
};

static int ref_fd;
static const char *ref_name;
static uint64_t cluster_size;
static uint64_t export_size;
static bool can_trim, can_zero, can_fua, can_flush;
static bool trim_keeps_data;

static uint64_t
splitmix64 (uint64_t *x)
{
  uint64_t z = (*x += UINT64_C (0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static uint64_t
rnd (struct worker *w)
{
  uint64_t x = w->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  w->rng = x;
  return x * UINT64_C (0x2545f4914f6cdd1d);
}

/* Uniform in [0, n), n > 0 (the bias is irrelevant here). */
static uint64_t
rnd_below (struct worker *w, uint64_t n)
{
  return rnd (w) % n;
}

static void __attribute__ ((noreturn))
die_nbd (struct worker *w, const char *what, uint64_t offset, uint64_t len)
{
  fprintf (stderr, "zq-workload: thread %u: %s at offset %" PRIu64
           " length %" PRIu64 " failed: %s\n",
           w->index, what, offset, len, nbd_get_error ());
  exit (1);
}

static void __attribute__ ((noreturn))
die_errno (const char *what)
{
  fprintf (stderr, "zq-workload: %s: %s: %s\n", ref_name, what,
           strerror (errno));
  exit (1);
}

static void
ref_pwrite (const void *buf, uint64_t len, uint64_t offset)
{
  const unsigned char *p = buf;
  while (len > 0) {
    ssize_t r = pwrite (ref_fd, p, len, offset);
    if (r == -1) {
      if (errno == EINTR) continue;
      die_errno ("pwrite");
    }
    p += r; len -= r; offset += r;
  }
}

static void
ref_pread (void *buf, uint64_t len, uint64_t offset)
{
  unsigned char *p = buf;
  while (len > 0) {
    ssize_t r = pread (ref_fd, p, len, offset);
    if (r == -1) {
      if (errno == EINTR) continue;
      die_errno ("pread");
    }
    if (r == 0) {               /* past the end of a short file: zeroes */
      memset (p, 0, len);
      return;
    }
    p += r; len -= r; offset += r;
  }
}

/* Zeroes in the reference, through the worker's buffer. */
static void
ref_zero (struct worker *w, uint64_t len, uint64_t offset)
{
  memset (w->ref_buf, 0, len < MAX_IO ? len : MAX_IO);
  while (len > 0) {
    uint64_t n = len < MAX_IO ? len : MAX_IO;
    ref_pwrite (w->ref_buf, n, offset);
    len -= n; offset += n;
  }
}

/* Read [offset, offset+len) through NBD and compare with the reference. */
static void
check_range (struct worker *w, uint64_t offset, uint64_t len)
{
  uint64_t i;

  if (nbd_pread (w->nbd, w->io_buf, len, offset, 0) == -1)
    die_nbd (w, "read", offset, len);
  ref_pread (w->ref_buf, len, offset);
  if (memcmp (w->io_buf, w->ref_buf, len) == 0) {
    w->bytes_verified += len;
    return;
  }
  for (i = 0; i < len && w->io_buf[i] == w->ref_buf[i]; i++)
    ;
  fprintf (stderr, "zq-workload: thread %u: read at offset %" PRIu64
           " length %" PRIu64 " differs from the reference: first at byte "
           "%" PRIu64 " (offset %" PRIu64 ", cluster %" PRIu64
           "): got 0x%02x, expected 0x%02x\n",
           w->index, offset, len, i, offset + i, (offset + i) / cluster_size,
           w->io_buf[i], w->ref_buf[i]);
  exit (1);
}

/* An I/O length of 1 byte to MAX_IO, spread over the orders of
 * magnitude: the bit length is uniform, so 1-byte writes and 4 MiB
 * writes are both common.
 */
static uint64_t
pick_length (struct worker *w)
{
  unsigned bits = rnd_below (w, 23); /* 2^22 == MAX_IO */
  uint64_t len = (UINT64_C (1) << bits) + rnd_below (w, UINT64_C (1) << bits);
  if (len > MAX_IO)
    len = MAX_IO;
  return len;
}

/* An offset for len bytes inside the region: mostly anywhere, sometimes
 * on a cluster boundary so that whole clusters are written and trimmed,
 * sometimes ending at the end of the region (for the last region, at the
 * end of the disk, which may cut the last cluster short).
 */
static uint64_t
pick_offset (struct worker *w, uint64_t len)
{
  uint64_t span = w->region_end - w->region_start;
  uint64_t offset;

  if (len > span)
    len = span;
  offset = w->region_start + rnd_below (w, span - len + 1);
  if (rnd_below (w, 16) == 0)   /* up to the end of the region (and disk) */
    return w->region_end - len;
  if (rnd_below (w, 4) == 0) {
    offset -= offset % cluster_size;
    if (offset < w->region_start)
      offset = w->region_start;
  }
  return offset;
}

static enum op_kind
pick_op (struct worker *w)
{
  unsigned r = rnd_below (w, 100);
  if (r < 45) return OP_WRITE;
  if (r < 63) return OP_READ;
  if (r < 78) return OP_TRIM;
  if (r < 96) return OP_ZERO;
  return OP_FLUSH;
}

static void
fill_random (struct worker *w, uint64_t len)
{
  uint64_t i, x;
  for (i = 0; i + 8 <= len; i += 8) {
    x = rnd (w);
    memcpy (w->io_buf + i, &x, 8);
  }
  if (i < len) {
    x = rnd (w);
    memcpy (w->io_buf + i, &x, len - i);
  }
}

static void *
run_worker (void *arg)
{
  struct worker *w = arg;
  uint64_t n;

  for (n = 0; n < w->nr_ops; n++) {
    enum op_kind op = pick_op (w);
    uint64_t len = pick_length (w);
    uint64_t offset;
    uint32_t flags = 0;

    if (len > w->region_end - w->region_start)
      len = w->region_end - w->region_start;
    offset = pick_offset (w, len);

    /* Fall back to something the server can do. */
    if ((op == OP_TRIM && !can_trim) || (op == OP_FLUSH && !can_flush))
      op = OP_READ;
    if (op == OP_ZERO && !can_zero)
      op = OP_WRITE;

    switch (op) {
    case OP_WRITE:
      fill_random (w, len);
      if (can_fua && rnd_below (w, 8) == 0) {
        flags |= LIBNBD_CMD_FLAG_FUA;
        w->fua++;
      }
      if (nbd_pwrite (w->nbd, w->io_buf, len, offset, flags) == -1)
        die_nbd (w, "write", offset, len);
      ref_pwrite (w->io_buf, len, offset);
      /* Read back a window around small writes now and then. */
      if (rnd_below (w, 4) == 0) {
        uint64_t s = offset > cluster_size ? offset - cluster_size
                                           : w->region_start;
        uint64_t e = offset + len + cluster_size;
        if (s < w->region_start) s = w->region_start;
        if (e > w->region_end) e = w->region_end;
        if (e - s > MAX_IO) e = s + MAX_IO;
        check_range (w, s, e - s);
      }
      break;

    case OP_READ:
      check_range (w, offset, len);
      break;

    case OP_TRIM: {
      uint64_t first, last;
      if (can_fua && rnd_below (w, 8) == 0) {
        flags |= LIBNBD_CMD_FLAG_FUA;
        w->fua++;
      }
      if (nbd_trim (w->nbd, len, offset, flags) == -1)
        die_nbd (w, "trim", offset, len);
      /* The last cluster of the disk may be cut short by its end: a trim
       * reaching the end covers all of that cluster there is.
       */
      first = (offset + cluster_size - 1) / cluster_size * cluster_size;
      last = offset + len == export_size
        ? export_size : (offset + len) / cluster_size * cluster_size;
      if (last > first && !trim_keeps_data) {
        ref_zero (w, last - first, first);
        w->trimmed_clusters += (last - first) / cluster_size;
      }
      break;
    }

    case OP_ZERO:
      if (rnd_below (w, 2) == 0) {
        flags |= LIBNBD_CMD_FLAG_NO_HOLE;
        w->zero_no_hole++;
      }
      if (can_fua && rnd_below (w, 4) == 0) {
        flags |= LIBNBD_CMD_FLAG_FUA;
        w->fua++;
      }
      if (nbd_zero (w->nbd, len, offset, flags) == -1)
        die_nbd (w, "write-zeroes", offset, len);
      ref_zero (w, len, offset);
      break;

    case OP_FLUSH:
      if (nbd_flush (w->nbd, 0) == -1)
        die_nbd (w, "flush", 0, 0);
      break;

    case NR_OPS:
      abort ();
    }
    w->count[op]++;
  }

  /* Read back the whole region. */
  for (n = w->region_start; n < w->region_end; n += MAX_IO) {
    uint64_t len = w->region_end - n < MAX_IO ? w->region_end - n : MAX_IO;
    check_range (w, n, len);
  }
  return NULL;
}

static void __attribute__ ((noreturn))
usage (void)
{
  fprintf (stderr,
           "usage: zq-workload --seed N --ops N --connections K "
           "--reference FILE --cluster-size BYTES [--trim-keeps-data] "
           "URI\n");
  exit (2);
}

static uint64_t
parse_u64 (const char *opt, const char *s)
{
  char *end;
  unsigned long long v;
  errno = 0;
  v = strtoull (s, &end, 0);
  if (errno || end == s || *end) {
    fprintf (stderr, "zq-workload: %s: cannot parse '%s'\n", opt, s);
    exit (2);
  }
  return v;
}

int
main (int argc, char *argv[])
{
  static const struct option long_options[] = {
    { "seed", required_argument, NULL, 's' },
    { "ops", required_argument, NULL, 'n' },
    { "connections", required_argument, NULL, 'c' },
    { "reference", required_argument, NULL, 'r' },
    { "cluster-size", required_argument, NULL, 'C' },
    { "trim-keeps-data", no_argument, NULL, 'K' },
    { NULL, 0, NULL, 0 }
  };
  uint64_t seed = 1, ops = 2000, connections = 1;
  const char *uri;
  struct worker *workers;
  int64_t size;
  struct stat st;
  uint64_t region, i, totals[NR_OPS] = { 0 };
  uint64_t no_hole = 0, fua = 0, verified = 0, trimmed = 0;
  int c;

  cluster_size = 65536;
  while ((c = getopt_long (argc, argv, "", long_options, NULL)) != -1) {
    switch (c) {
    case 's': seed = parse_u64 ("--seed", optarg); break;
    case 'n': ops = parse_u64 ("--ops", optarg); break;
    case 'c': connections = parse_u64 ("--connections", optarg); break;
    case 'r': ref_name = optarg; break;
    case 'C': cluster_size = parse_u64 ("--cluster-size", optarg); break;
    case 'K': trim_keeps_data = true; break;
    default: usage ();
    }
  }
  if (optind != argc - 1 || ref_name == NULL || connections == 0 ||
      connections > 64 || cluster_size < 512 ||
      (cluster_size & (cluster_size - 1)) != 0)
    usage ();
  uri = argv[optind];

  ref_fd = open (ref_name, O_RDWR);
  if (ref_fd == -1 || fstat (ref_fd, &st) == -1)
    die_errno ("open");

  workers = calloc (connections, sizeof *workers);
  if (workers == NULL)
    die_errno ("calloc");

  for (i = 0; i < connections; i++) {
    struct worker *w = &workers[i];
    w->index = i;
    w->uri = uri;
    w->nbd = nbd_create ();
    if (w->nbd == NULL || nbd_connect_uri (w->nbd, uri) == -1) {
      fprintf (stderr, "zq-workload: connect %s: %s\n", uri,
               nbd_get_error ());
      exit (1);
    }
    w->io_buf = malloc (MAX_IO);
    w->ref_buf = malloc (MAX_IO);
    if (w->io_buf == NULL || w->ref_buf == NULL)
      die_errno ("malloc");
  }

  size = nbd_get_size (workers[0].nbd);
  if (size == -1) {
    fprintf (stderr, "zq-workload: %s\n", nbd_get_error ());
    exit (1);
  }
  if ((uint64_t) st.st_size != (uint64_t) size) {
    fprintf (stderr, "zq-workload: reference %s is %jd bytes but the "
             "export is %" PRId64 " bytes\n", ref_name,
             (intmax_t) st.st_size, size);
    exit (1);
  }
  if (nbd_is_read_only (workers[0].nbd) == 1) {
    fprintf (stderr, "zq-workload: %s is read-only\n", uri);
    exit (1);
  }
  can_trim = nbd_can_trim (workers[0].nbd) == 1;
  can_zero = nbd_can_zero (workers[0].nbd) == 1;
  can_fua = nbd_can_fua (workers[0].nbd) == 1;
  can_flush = nbd_can_flush (workers[0].nbd) == 1;
  if (!can_trim || !can_zero || !can_fua || !can_flush)
    fprintf (stderr, "zq-workload: warning: the server lacks%s%s%s%s\n",
             can_trim ? "" : " trim", can_zero ? "" : " write-zeroes",
             can_fua ? "" : " FUA", can_flush ? "" : " flush");

  export_size = size;
  region = (uint64_t) size / connections / REGION_ALIGN * REGION_ALIGN;
  if (region == 0) {
    fprintf (stderr, "zq-workload: the export (%" PRId64 " bytes) is too "
             "small for %" PRIu64 " regions of 4 MiB\n", size, connections);
    exit (1);
  }

  for (i = 0; i < connections; i++) {
    struct worker *w = &workers[i];
    uint64_t s = seed + i;
    w->region_start = i * region;
    w->region_end = i == connections - 1 ? (uint64_t) size
                                         : (i + 1) * region;
    w->nr_ops = ops / connections + (i < ops % connections);
    w->rng = splitmix64 (&s);
    if (w->rng == 0)
      w->rng = 1;
    if (pthread_create (&w->thread, NULL, run_worker, w) != 0) {
      fprintf (stderr, "zq-workload: pthread_create failed\n");
      exit (1);
    }
  }

  for (i = 0; i < connections; i++) {
    struct worker *w = &workers[i];
    unsigned k;
    pthread_join (w->thread, NULL);
    for (k = 0; k < NR_OPS; k++)
      totals[k] += w->count[k];
    no_hole += w->zero_no_hole;
    fua += w->fua;
    verified += w->bytes_verified;
    trimmed += w->trimmed_clusters;
    if (nbd_shutdown (w->nbd, 0) == -1) {
      fprintf (stderr, "zq-workload: shutdown: %s\n", nbd_get_error ());
      exit (1);
    }
    nbd_close (w->nbd);
    free (w->io_buf);
    free (w->ref_buf);
  }
  free (workers);

  if (close (ref_fd) == -1)
    die_errno ("close");

  printf ("zq-workload: seed %" PRIu64 ", %" PRIu64 " connections: ",
          seed, connections);
  for (i = 0; i < NR_OPS; i++)
    printf ("%s %" PRIu64 ", ", op_names[i], totals[i]);
  printf ("(zero no-hole %" PRIu64 ", fua %" PRIu64 ", clusters trimmed %"
          PRIu64 "), %" PRIu64 " bytes verified\n",
          no_hole, fua, trimmed, verified);
  return 0;
}
