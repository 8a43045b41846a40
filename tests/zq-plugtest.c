/* zq-plugtest: an in-order stream of writes into a zone, sent all at once
 * over several connections in the worst order, as the Linux kernel's NBD
 * client may send it.
 *
 *   zq-plugtest [--connections N] [--depth D] [--bs BYTES]
 *               [--order reverse|shuffle] [--seed S] [--tag T] [--zero]
 *               URI START
 *
 * The stream is N * D requests of BYTES that together cover
 * [START, START + N * D * BYTES) without gaps: request k starts at
 * START + k * BYTES and goes to connection k % N, so every connection
 * holds writes the others wait for.  Each connection's thread queues all
 * its D requests before it waits for any reply, latest offset first
 * (reverse) or in a shuffled order, so the write at the pointer comes
 * last.  The threads start queueing together.  Writes carry pattern TAG
 * (zq-pattern.h); --zero sends write zeroes instead.
 *
 * Prints how many requests failed; exit status 0 when none did, 1 when
 * some did, 2 on a usage error or a lost connection.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "zq-pattern.h"

#define MAX_CONNECTIONS 16

static const char *progname = "zq-plugtest";

static unsigned nr_connections = 2, depth = 128;
static uint64_t block_size = 4096, start;
static bool shuffle, zeroes;
static unsigned seed = 1;
static uint32_t tag = 1;
static const char *uri;
static unsigned char *data;     /* the whole stream's payload */

static pthread_barrier_t connected;

struct writer {
  unsigned index;
  struct nbd_handle *h;
  unsigned failed;
  int first_error;
  int status;                   /* 0, or 2: lost */
};

static int
request_done (void *opaque, int *error)
{
  struct writer *w = opaque;

  if (*error != 0) {
    if (w->failed++ == 0)
      w->first_error = *error;
  }
  return 1;
}

/* The order in which this connection queues its requests: indices into
 * its own D requests.
 */
static void
queue_order (unsigned *order, unsigned n, unsigned index)
{
  unsigned i, j, t, state = seed * 2654435761u + index;

  for (i = 0; i < n; i++)
    order[i] = n - 1 - i;
  if (!shuffle)
    return;
  for (i = n - 1; i > 0; i--) {
    state = state * 1103515245u + 12345u;
    j = (state >> 8) % (i + 1);
    t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
}

static void *
writer_thread (void *opaque)
{
  struct writer *w = opaque;
  unsigned *order = calloc (depth, sizeof *order);
  unsigned i;

  if (order == NULL) {
    perror (progname);
    exit (2);
  }
  queue_order (order, depth, w->index);
  pthread_barrier_wait (&connected);
  for (i = 0; i < depth; i++) {
    uint64_t k = (uint64_t) order[i] * nr_connections + w->index;
    uint64_t offset = start + k * block_size;
    nbd_completion_callback done = { .callback = request_done,
                                     .user_data = w };
    int64_t r;

    r = zeroes ? nbd_aio_zero (w->h, block_size, offset, done, 0)
               : nbd_aio_pwrite (w->h, data + k * block_size, block_size,
                                 offset, done, 0);
    if (r == -1) {
      fprintf (stderr, "%s: connection %u: %s\n", progname, w->index,
               nbd_get_error ());
      w->status = 2;
      goto out;
    }
  }
  while (nbd_aio_in_flight (w->h) > 0)
    if (nbd_poll (w->h, -1) == -1) {
      fprintf (stderr, "%s: connection %u: %s\n", progname, w->index,
               nbd_get_error ());
      w->status = 2;
      break;
    }
 out:
  free (order);
  return NULL;
}

static uint64_t
parse_number (const char *s)
{
  char *end;
  unsigned long long n;

  errno = 0;
  n = strtoull (s, &end, 0);
  if (errno != 0 || end == s)
    goto bad;
  switch (*end) {
  case '\0': return n;
  case 'k': n <<= 10; break;
  case 'M': n <<= 20; break;
  case 'G': n <<= 30; break;
  default: goto bad;
  }
  if (end[1] == '\0')
    return n;
 bad:
  fprintf (stderr, "%s: %s: not a number\n", progname, s);
  exit (2);
}

static void
usage (void)
{
  fprintf (stderr, "usage: %s [--connections N] [--depth D] [--bs BYTES] "
           "[--order reverse|shuffle] [--seed S] [--tag T] [--zero] "
           "URI START\n", progname);
  exit (2);
}

int
main (int argc, char **argv)
{
  static const struct option options[] = {
    { "connections", required_argument, NULL, 'c' },
    { "depth", required_argument, NULL, 'd' },
    { "bs", required_argument, NULL, 'b' },
    { "order", required_argument, NULL, 'o' },
    { "seed", required_argument, NULL, 's' },
    { "tag", required_argument, NULL, 't' },
    { "zero", no_argument, NULL, 'z' },
    { NULL, 0, NULL, 0 },
  };
  struct writer writers[MAX_CONNECTIONS] = { { 0 } };
  pthread_t threads[MAX_CONNECTIONS];
  unsigned i, failed = 0, total;
  int c, status = 0, first_error = 0;
  uint64_t length;

  while ((c = getopt_long (argc, argv, "", options, NULL)) != -1) {
    switch (c) {
    case 'c': nr_connections = parse_number (optarg); break;
    case 'd': depth = parse_number (optarg); break;
    case 'b': block_size = parse_number (optarg); break;
    case 'o':
      if (strcmp (optarg, "shuffle") == 0)
        shuffle = true;
      else if (strcmp (optarg, "reverse") != 0)
        usage ();
      break;
    case 's': seed = parse_number (optarg); break;
    case 't': tag = parse_number (optarg); break;
    case 'z': zeroes = true; break;
    default: usage ();
    }
  }
  if (argc - optind != 2 || nr_connections == 0 ||
      nr_connections > MAX_CONNECTIONS || depth == 0 || block_size == 0)
    usage ();
  uri = argv[optind];
  start = parse_number (argv[optind + 1]);
  total = nr_connections * depth;
  length = total * block_size;

  if (!zeroes) {
    data = malloc (length);
    if (data == NULL) {
      perror (progname);
      exit (2);
    }
    zq_pattern_fill (data, start, length, tag);
  }

  for (i = 0; i < nr_connections; i++) {
    writers[i].index = i;
    writers[i].h = nbd_create ();
    if (writers[i].h == NULL || nbd_connect_uri (writers[i].h, uri) == -1) {
      fprintf (stderr, "%s: %s: %s\n", progname, uri, nbd_get_error ());
      exit (2);
    }
  }
  pthread_barrier_init (&connected, NULL, nr_connections);
  for (i = 0; i < nr_connections; i++)
    if (pthread_create (&threads[i], NULL, writer_thread, &writers[i]) != 0) {
      perror (progname);
      exit (2);
    }
  for (i = 0; i < nr_connections; i++) {
    pthread_join (threads[i], NULL);
    if (writers[i].status != 0)
      status = 2;
    if (writers[i].failed > 0 && first_error == 0)
      first_error = writers[i].first_error;
    failed += writers[i].failed;
    nbd_shutdown (writers[i].h, 0);
    nbd_close (writers[i].h);
  }

  printf ("%s: %u of %u %s (%u connections, %u each, %s order, %" PRIu64
          " bytes each) failed", progname, failed, total,
          zeroes ? "write zeroes" : "writes", nr_connections, depth,
          shuffle ? "shuffled" : "reverse", block_size);
  if (failed > 0)
    printf (", the first with %s", strerror (first_error));
  printf ("\n");
  free (data);
  if (status != 0)
    return status;
  return failed > 0;
}
