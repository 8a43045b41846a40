/* libFuzzer harness: zqcow2-nbd's negotiation and request parsing.
 *
 * The input is everything a client sends on one connection.  The
 * server's own connection code (connection_start, protocol.c,
 * transmission.c, wire.c) serves one end of a socketpair, exactly as it
 * serves an accepted socket; a pump thread feeds the input into the other
 * end, closes it for writing, and drains the replies.  The export is a
 * fresh zoned image, made anew for each input so that a finding
 * reproduces from its input alone; FUZZ_NBD_PLAIN=1 serves a plain one.
 * Whatever the client sent, the server must not crash, and the image it
 * leaves must pass zq_check: no corruption, no write-pointer error, no
 * leaked cluster.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz-common.h"
#include "options.h"
#include "server.h"

struct pump {
  int fd;
  const uint8_t *data;
  size_t size;
};

/* Sends the input and reads whatever comes back until the server hangs
 * up.  The server may stop reading early (a bad magic): then the rest of
 * the input is dropped.
 */
static void *
pump_thread (void *opaque)
{
  struct pump *p = opaque;
  size_t sent = 0;
  uint8_t sink[65536];
  bool write_open = true;

  if (p->size == 0) {
    shutdown (p->fd, SHUT_WR);
    write_open = false;
  }
  for (;;) {
    struct pollfd pfd = {
      .fd = p->fd, .events = POLLIN | (write_open ? POLLOUT : 0),
    };

    if (poll (&pfd, 1, -1) == -1) {
      if (errno == EINTR)
        continue;
      abort ();
    }
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = recv (p->fd, sink, sizeof sink, MSG_DONTWAIT);
      if (r == 0 || (r == -1 && errno != EAGAIN && errno != EINTR))
        break;
    }
    if (write_open && (pfd.revents & POLLOUT)) {
      ssize_t r = send (p->fd, p->data + sent, p->size - sent,
                        MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r > 0)
        sent += r;
      if ((r > 0 && sent == p->size) ||
          (r == -1 && errno != EAGAIN && errno != EINTR)) {
        shutdown (p->fd, SHUT_WR);
        write_open = false;
      }
    }
  }
  close (p->fd);
  return NULL;
}

static void
make_export (const char *path)
{
  struct zq_create_options create = {
    .filename = path,
    .size = 8 << 20,
    .cluster_size = 4096,
  };

  if (getenv ("FUZZ_NBD_PLAIN") == NULL) {
    create.zoned = true;
    create.zone_size = 1 << 20;
    create.conventional_zones = 2;
    create.max_open_zones = 3;
    create.max_active_zones = 4;
  }
  if (zq_create (&create) == -1)
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static char image[4096];
  struct options options = { .engine = { .backing = "none" } };
  struct pump pump = { .data = data, .size = size };
  struct zq_check_result check = { 0 };
  pthread_t thread;
  int fds[2];

  if (image[0] == '\0') {
    signal (SIGPIPE, SIG_IGN);
    zq_set_log_fn (engine_log);
    verbose = getenv ("FUZZ_VERBOSE") != NULL;
    fuzz_path (image, "nbd.qcow2");
    export.name = "fuzz";
  }
  make_export (image);
  options.image = image;
  if (export_open (&options) == -1)
    abort ();

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == -1)
    abort ();
  pump.fd = fds[1];
  if (pthread_create (&thread, NULL, pump_thread, &pump) != 0)
    abort ();
  if (connection_start (fds[0]) == -1)
    abort ();
  connections_wait ();
  pthread_join (thread, NULL);

  if (zq_close (export.img) == -1)
    abort ();
  export.img = NULL;
  if (zq_check (image, &check) == -1 || check.corruptions != 0 ||
      check.wp_errors != 0 || check.check_errors != 0 || check.leaks != 0) {
    fprintf (stderr, "fuzz: the session left the image with %" PRIu64
             " corruptions, %" PRIu64 " write-pointer errors, %" PRIu64
             " leaks\n", check.corruptions, check.wp_errors, check.leaks);
    abort ();
  }
  return 0;
}
