/* zq-crashwriter: streams sequential writes into zones until the server
 * dies, keeping a log of what each FLUSH made durable; then, against the
 * restarted server, checks the image against that log.
 *
 *   zq-crashwriter write  --zone-size SIZE --capacity CAP --log LOG
 *                         [--seed N] [--depth N] [--max-writes N] URI ZONE...
 *   zq-crashwriter verify --zone-size SIZE --capacity CAP --log LOG
 *                         URI ZONE=WP...
 *
 * write: picks zones at random (seeded) and appends writes of 512 bytes to
 * 256 KiB at each zone's write pointer, up to N in flight, with a FLUSH
 * every 1 to 8 writes.  A full zone is reset (TRIM of the whole zone) and
 * written again under the next generation.  Every byte is the pattern of
 * its offset and its zone's generation (zq-pattern.h), so data left from an
 * earlier generation never passes for new data.
 *
 * The log (appended and fsync'd before the next request goes out) holds:
 *   flushed Z POS GEN     after a FLUSH returned: zone Z holds generation
 *                         GEN up to POS, durably
 *   reset Z GEN           before a reset is sent: the next generation
 *   resetdone Z GEN       after the reset returned (it is durable then)
 *   recovered Z WP GEN    written by verify: where the next round starts
 *
 * verify: for each zone, given the write pointer the image holds (from
 * zqcow2-img zones), checks that it is not below the last flushed position
 * (or, with a reset in flight, that it is either the zone start or not
 * below that position), that every byte below it reads back the pattern
 * and that every byte from it to the zone end reads as zeroes; then logs
 * "recovered" so that the next write round continues from there.
 *
 * Exit status: write: 0 wrote N writes, 3 lost the server (what a kill
 * does), 1 a request failed while the server lived; verify: 0 all good,
 * 1 a check failed; 2 usage or setup errors.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libnbd.h>

#include "zq-pattern.h"

#define MAX_ZONES 64
#define MAX_WRITE (256u * 1024)
#define READ_CHUNK (4u * 1024 * 1024)

static const char *progname = "zq-crashwriter";

struct zone_state {
  uint32_t zone;
  uint64_t start;
  uint64_t pos;                 /* write mode: next write; replay: lower
                                   bound of the on-disk write pointer */
  uint32_t gen;
  bool reset_pending;           /* "reset" logged, no "resetdone" */
  uint32_t pending_gen;
};

static uint64_t zone_size, capacity;
static const char *log_name;
static int log_fd = -1;
static struct zone_state zones[MAX_ZONES];
static unsigned nr_zones;

static void __attribute__ ((noreturn, format (printf, 2, 3)))
die (int status, const char *fmt, ...)
{
  va_list ap;

  fprintf (stderr, "%s: ", progname);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fprintf (stderr, "\n");
  exit (status);
}

static struct zone_state *
find_zone (uint32_t zone)
{
  unsigned i;

  for (i = 0; i < nr_zones; i++)
    if (zones[i].zone == zone)
      return &zones[i];
  return NULL;
}

static void
add_zone (uint32_t zone)
{
  struct zone_state *z;

  if (nr_zones == MAX_ZONES)
    die (2, "at most %d zones", MAX_ZONES);
  if (find_zone (zone))
    die (2, "zone %" PRIu32 " named twice", zone);
  z = &zones[nr_zones++];
  z->zone = zone;
  z->start = zone * zone_size;
  z->pos = z->start;
  z->gen = 1;
}

/* Replays the log into zones[]: where each zone must be at least, and
 * which generation its data belongs to.
 */
static void
replay_log (void)
{
  FILE *fp = fopen (log_name, "r");
  char line[256], what[32];
  uint32_t zone, gen;
  uint64_t pos;
  unsigned lineno = 0;

  if (fp == NULL) {
    if (errno == ENOENT)
      return;
    die (2, "%s: %s", log_name, strerror (errno));
  }
  while (fgets (line, sizeof line, fp)) {
    struct zone_state *z;
    int n;

    lineno++;
    n = sscanf (line, "%31s %" SCNu32 " %" SCNu64 " %" SCNu32,
                what, &zone, &pos, &gen);
    if (n < 3)
      die (2, "%s:%u: cannot parse '%s'", log_name, lineno, line);
    z = find_zone (zone);
    if (z == NULL)
      continue;
    if (strcmp (what, "flushed") == 0 && n == 4) {
      z->pos = pos;
      z->gen = gen;
      z->reset_pending = false;
    }
    else if (strcmp (what, "recovered") == 0 && n == 4) {
      z->pos = pos;
      z->gen = gen;
      z->reset_pending = false;
    }
    else if (strcmp (what, "reset") == 0 && n == 3) {
      z->reset_pending = true;
      z->pending_gen = pos;
    }
    else if (strcmp (what, "resetdone") == 0 && n == 3) {
      z->pos = z->start;
      z->gen = pos;
      z->reset_pending = false;
    }
    else
      die (2, "%s:%u: cannot parse '%s'", log_name, lineno, line);
  }
  fclose (fp);
}

/* Appends records to the log and makes them durable. */
static void
log_records (const char *text)
{
  size_t len = strlen (text);

  if (log_fd == -1) {
    log_fd = open (log_name, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (log_fd == -1)
      die (2, "%s: %s", log_name, strerror (errno));
  }
  if (write (log_fd, text, len) != (ssize_t) len || fsync (log_fd) == -1)
    die (2, "%s: %s", log_name, strerror (errno));
}

static struct nbd_handle *
connect_to (const char *uri)
{
  struct nbd_handle *h = nbd_create ();

  if (h == NULL || nbd_set_strict_mode (h, 0) == -1 ||
      nbd_connect_uri (h, uri) == -1)
    die (2, "%s: %s", uri, nbd_get_error ());
  return h;
}

/* ---- write ------------------------------------------------------- */

static uint64_t rng;

static uint64_t
next_random (void)
{
  uint64_t z = (rng += UINT64_C (0x9e3779b97f4a7c15));

  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

struct inflight {
  unsigned char *buf;
  uint64_t offset, length;
  int *first_error;
  uint64_t *error_offset;
};

static int
write_done (void *opaque, int *error)
{
  struct inflight *io = opaque;

  if (*error != 0 && *io->first_error == 0) {
    *io->first_error = *error;
    *io->error_offset = io->offset;
  }
  free (io->buf);
  free (io);
  return 1;
}

/* A request failed: was it the server dying (expected) or a verdict? */
static void __attribute__ ((noreturn))
request_failed (struct nbd_handle *h, const char *what, uint64_t offset,
                int err, uint64_t nr_writes)
{
  if (nbd_aio_is_dead (h) || nbd_aio_is_closed (h)) {
    printf ("%s: lost the server after %" PRIu64 " writes (%s)\n",
            progname, nr_writes, what);
    exit (3);
  }
  die (1, "%s at %" PRIu64 " failed with errno %d (%s) while the server "
       "was alive", what, offset, err, strerror (err));
}

/* Waits until at most `limit` requests are in flight. */
static void
drain (struct nbd_handle *h, int limit, int *first_error,
       uint64_t *error_offset, uint64_t nr_writes)
{
  while (nbd_aio_in_flight (h) > limit)
    if (nbd_poll (h, -1) == -1)
      request_failed (h, "waiting for writes", 0, nbd_get_errno (),
                      nr_writes);
  if (*first_error)
    request_failed (h, "a write", *error_offset, *first_error, nr_writes);
}

static int
run_write (const char *uri, uint64_t seed, unsigned depth,
           uint64_t max_writes)
{
  struct nbd_handle *h;
  uint64_t nr_writes = 0, nr_flushes = 0, nr_resets = 0;
  unsigned since_flush = 0, flush_every;
  int first_error = 0;
  uint64_t error_offset = 0;
  unsigned i;

  replay_log ();
  for (i = 0; i < nr_zones; i++)
    if (zones[i].reset_pending)
      die (2, "zone %" PRIu32 ": the log ends in a reset: run verify first",
           zones[i].zone);
  rng = seed;
  flush_every = 1 + next_random () % 8;
  /* A kill may come before the handshake is over: that is a lost server
   * too.  (A server that cannot serve the image at all fails verify.)
   */
  h = nbd_create ();
  if (h == NULL || nbd_set_strict_mode (h, 0) == -1)
    die (2, "%s", nbd_get_error ());
  if (nbd_connect_uri (h, uri) == -1) {
    printf ("%s: lost the server after 0 writes (connecting: %s)\n",
            progname, nbd_get_error ());
    exit (3);
  }

  while (nr_writes < max_writes) {
    struct zone_state *z = &zones[next_random () % nr_zones];
    uint64_t room = z->start + capacity - z->pos;
    uint64_t len = 512 * (1 + next_random () % (MAX_WRITE / 512));
    struct inflight *io;
    char record[128];

    if (room == 0) {
      /* Full: reset it, after every write to it has returned. */
      drain (h, 0, &first_error, &error_offset, nr_writes);
      snprintf (record, sizeof record, "reset %" PRIu32 " %" PRIu32 "\n",
                z->zone, z->gen + 1);
      log_records (record);
      if (nbd_trim (h, zone_size, z->start, 0) == -1)
        request_failed (h, "a reset (trim of the whole zone)", z->start,
                        nbd_get_errno (), nr_writes);
      z->gen++;
      z->pos = z->start;
      snprintf (record, sizeof record, "resetdone %" PRIu32 " %" PRIu32
                "\n", z->zone, z->gen);
      log_records (record);
      nr_resets++;
      continue;
    }
    if (len > room)
      len = room;

    io = malloc (sizeof *io);
    io->buf = malloc (len);
    io->offset = z->pos;
    io->length = len;
    io->first_error = &first_error;
    io->error_offset = &error_offset;
    zq_pattern_fill (io->buf, z->pos, len, z->gen);
    drain (h, depth - 1, &first_error, &error_offset, nr_writes);
    if (nbd_aio_pwrite (h, io->buf, len, z->pos,
                        (nbd_completion_callback) {
                          .callback = write_done, .user_data = io }, 0) == -1)
      request_failed (h, "a write", z->pos, nbd_get_errno (), nr_writes);
    z->pos += len;
    nr_writes++;

    if (++since_flush >= flush_every) {
      char records[MAX_ZONES * 64];
      size_t used = 0;

      /* FLUSH covers the writes that completed before it was sent. */
      drain (h, 0, &first_error, &error_offset, nr_writes);
      if (nbd_flush (h, 0) == -1)
        request_failed (h, "a flush", 0, nbd_get_errno (), nr_writes);
      for (i = 0; i < nr_zones; i++)
        used += snprintf (records + used, sizeof records - used,
                          "flushed %" PRIu32 " %" PRIu64 " %" PRIu32 "\n",
                          zones[i].zone, zones[i].pos, zones[i].gen);
      log_records (records);
      nr_flushes++;
      since_flush = 0;
      flush_every = 1 + next_random () % 8;
    }
  }
  drain (h, 0, &first_error, &error_offset, nr_writes);
  nbd_shutdown (h, 0);
  nbd_close (h);
  printf ("%s: %" PRIu64 " writes, %" PRIu64 " flushes, %" PRIu64
          " resets\n", progname, nr_writes, nr_flushes, nr_resets);
  return 0;
}

/* ---- verify ------------------------------------------------------ */

/* Reads [from, to) and checks it: pattern `gen`, or zeroes if gen is 0.
 * Returns the offset of the first bad byte, or `to`.
 */
static uint64_t
check_range (struct nbd_handle *h, unsigned char *buf, uint64_t from,
             uint64_t to, uint32_t gen, unsigned char *got)
{
  uint64_t off;

  for (off = from; off < to; off += READ_CHUNK) {
    size_t n = to - off < READ_CHUNK ? to - off : READ_CHUNK;
    size_t bad;

    if (nbd_pread (h, buf, n, off, 0) == -1)
      die (1, "read of %zu bytes at %" PRIu64 ": %s", n, off,
           nbd_get_error ());
    bad = gen ? zq_pattern_mismatch (buf, off, n, gen)
              : zq_zero_mismatch (buf, n);
    if (bad < n) {
      *got = buf[bad];
      return off + bad;
    }
  }
  return to;
}

static int
run_verify (const char *uri, char **wps, int nr_wps)
{
  struct nbd_handle *h;
  unsigned char *buf = malloc (READ_CHUNK);
  char records[MAX_ZONES * 64];
  size_t used = 0;
  int i, failed = 0;

  replay_log ();
  h = connect_to (uri);
  for (i = 0; i < nr_wps; i++) {
    uint32_t zone;
    uint64_t wp, data_end, bad;
    struct zone_state *z;
    uint32_t gen;
    unsigned char got = 0;
    const char *how = "";

    if (sscanf (wps[i], "%" SCNu32 "=%" SCNu64, &zone, &wp) != 2 ||
        (z = find_zone (zone)) == NULL)
      die (2, "'%s': expected ZONE=WP for a zone of the list", wps[i]);

    if (wp < z->start || wp > z->start + zone_size) {
      printf ("FAILED  zone %" PRIu32 ": on-disk write pointer %" PRIu64
              " is outside the zone [%" PRIu64 ", %" PRIu64 "]\n",
              zone, wp, z->start, z->start + zone_size);
      failed++;
      continue;
    }
    /* A full zone may report start + zone size. */
    data_end = wp < z->start + capacity ? wp : z->start + capacity;

    gen = z->gen;
    if (z->reset_pending && wp == z->start) {
      gen = z->pending_gen;
      how = " (the reset in flight took effect)";
    }
    else if (z->reset_pending)
      how = " (the reset in flight did not take effect)";
    if (data_end < z->pos && !(z->reset_pending && wp == z->start)) {
      printf ("FAILED  zone %" PRIu32 ": on-disk write pointer %" PRIu64
              " (0x%" PRIx64 ") is below the last flushed position %"
              PRIu64 " (0x%" PRIx64 "): flushed data was lost\n",
              zone, wp, wp, z->pos, z->pos);
      failed++;
      continue;
    }
    bad = check_range (h, buf, z->start, data_end, gen, &got);
    if (bad < data_end) {
      printf ("FAILED  zone %" PRIu32 ": byte at %" PRIu64 " (0x%" PRIx64
              "), below the on-disk write pointer %" PRIu64 ", reads 0x%02x,"
              " expected 0x%02x (generation %" PRIu32 ")%s\n",
              zone, bad, bad, wp, got, zq_pattern_byte (bad, gen), gen, how);
      failed++;
      continue;
    }
    bad = check_range (h, buf, data_end, z->start + zone_size, 0, &got);
    if (bad < z->start + zone_size) {
      printf ("FAILED  zone %" PRIu32 ": byte at %" PRIu64 " (0x%" PRIx64
              "), at or above the write pointer %" PRIu64 ", reads 0x%02x,"
              " not zero\n", zone, bad, bad, wp, got);
      failed++;
      continue;
    }
    printf ("ok      zone %" PRIu32 ": write pointer %" PRIu64 " >= flushed %"
            PRIu64 "; %" PRIu64 " bytes of generation %" PRIu32
            " read back, zeroes after%s\n",
            zone, wp, z->reset_pending && wp == z->start ? z->start : z->pos,
            data_end - z->start, gen, how);
    used += snprintf (records + used, sizeof records - used,
                      "recovered %" PRIu32 " %" PRIu64 " %" PRIu32 "\n",
                      zone, data_end, gen);
  }
  nbd_shutdown (h, 0);
  nbd_close (h);
  free (buf);
  if (failed)
    return 1;
  log_records (records);
  return 0;
}

int
main (int argc, char **argv)
{
  static const struct option long_options[] = {
    { "zone-size", required_argument, NULL, 'z' },
    { "capacity", required_argument, NULL, 'c' },
    { "log", required_argument, NULL, 'l' },
    { "seed", required_argument, NULL, 's' },
    { "depth", required_argument, NULL, 'd' },
    { "max-writes", required_argument, NULL, 'm' },
    { NULL, 0, NULL, 0 },
  };
  const char *mode;
  uint64_t seed = 1, max_writes = UINT64_MAX;
  unsigned depth = 1;
  int c, i;

  if (argc < 2)
    goto usage;
  mode = argv[1];
  argc--, argv++;
  while ((c = getopt_long (argc, argv, "", long_options, NULL)) != -1) {
    switch (c) {
    case 'z': zone_size = strtoull (optarg, NULL, 0); break;
    case 'c': capacity = strtoull (optarg, NULL, 0); break;
    case 'l': log_name = optarg; break;
    case 's': seed = strtoull (optarg, NULL, 0); break;
    case 'd': depth = strtoul (optarg, NULL, 0); break;
    case 'm': max_writes = strtoull (optarg, NULL, 0); break;
    default: goto usage;
    }
  }
  if (zone_size == 0 || capacity == 0 || capacity > zone_size ||
      capacity % 512 || log_name == NULL || depth == 0 || argc - optind < 2)
    goto usage;

  if (strcmp (mode, "write") == 0) {
    for (i = optind + 1; i < argc; i++)
      add_zone (strtoul (argv[i], NULL, 10));
    return run_write (argv[optind], seed, depth, max_writes);
  }
  if (strcmp (mode, "verify") == 0) {
    for (i = optind + 1; i < argc; i++)
      add_zone (strtoul (argv[i], NULL, 10));
    return run_verify (argv[optind], argv + optind + 1, argc - optind - 1);
  }

 usage:
  fprintf (stderr,
           "usage: %s write --zone-size SIZE --capacity CAP --log LOG "
           "[--seed N] [--depth N] [--max-writes N] URI ZONE...\n"
           "       %s verify --zone-size SIZE --capacity CAP --log LOG "
           "URI ZONE=WP...\n", progname, progname);
  return 2;
}
