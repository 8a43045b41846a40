/* zqcow2-nbd: a standalone NBD server for one qcow2 image, zoned or not,
 * publishing base:allocation and, for zoned images, qemu:zone-state.
 *
 * main() reads the command line (options.c), opens the engine once for all
 * connections, listens, optionally starts the --run command, and accepts
 * connections until a signal or the end of that command.  Then it lets
 * the requests in flight finish and closes the engine, which flushes.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "captive.h"
#include "listen.h"
#include "options.h"
#include "server.h"

/* What the signal handlers saw; only main() reads them. */
static volatile sig_atomic_t quit_signal;
static volatile sig_atomic_t child_exited;

static void
on_quit (int sig)
{
  quit_signal = sig;
}

static void
on_child (int sig)
{
  child_exited = 1;
}

/* The signals main() waits for are blocked everywhere but in ppoll, so
 * worker threads never see them and the accept loop never misses one.
 * Threads created later inherit the blocked mask.
 */
static void
setup_signals (sigset_t *wait_mask, sigset_t *original_mask)
{
  struct sigaction sa = { .sa_handler = on_quit };
  sigset_t blocked;

  signal (SIGPIPE, SIG_IGN);
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  sa.sa_handler = on_child;
  sa.sa_flags = SA_NOCLDSTOP;
  sigaction (SIGCHLD, &sa, NULL);

  sigemptyset (&blocked);
  sigaddset (&blocked, SIGINT);
  sigaddset (&blocked, SIGTERM);
  sigaddset (&blocked, SIGCHLD);
  sigprocmask (SIG_BLOCK, &blocked, original_mask);
  *wait_mask = *original_mask;
  sigdelset (wait_mask, SIGINT);
  sigdelset (wait_mask, SIGTERM);
  sigdelset (wait_mask, SIGCHLD);
}

static void
accept_one (int listener)
{
  int fd = accept4 (listener, NULL, NULL, SOCK_CLOEXEC), one = 1;

  if (fd == -1) {
    if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
      server_error ("accept: %m");
    return;
  }
  /* Replies are written whole: send them at once.  (Fails harmlessly on
   * a Unix socket.)
   */
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  connection_start (fd);
}

/* Accepts connections until a quit signal, or until the --run command
 * (pid > 0) exits.  Returns the command's wait status, or -1.
 */
static int
serve (const int *listeners, int nr_listeners, pid_t child,
       const sigset_t *wait_mask)
{
  struct pollfd pfds[MAX_LISTENERS];
  int i, status;

  for (i = 0; i < nr_listeners; i++)
    pfds[i] = (struct pollfd) { .fd = listeners[i], .events = POLLIN };

  for (;;) {
    if (child > 0 && child_exited) {
      child_exited = 0;
      if (waitpid (child, &status, WNOHANG) == child)
        return status;
    }
    if (quit_signal) {
      server_debug ("signal %d: shutting down", (int) quit_signal);
      if (child > 0) {
        /* The command goes too, and its status is still the exit status. */
        kill (child, quit_signal);
        while (waitpid (child, &status, 0) == -1 && errno == EINTR)
          ;
        return status;
      }
      return -1;
    }
    if (ppoll (pfds, nr_listeners, NULL, wait_mask) == -1) {
      if (errno != EINTR) {
        /* Cannot go on: stop as a SIGTERM would. */
        server_error ("poll: %m");
        quit_signal = SIGTERM;
      }
      continue;
    }
    for (i = 0; i < nr_listeners; i++)
      if (pfds[i].revents & POLLIN)
        accept_one (pfds[i].fd);
  }
}

int
main (int argc, char *argv[])
{
  struct options o = { 0 };
  int listeners[MAX_LISTENERS], nr_listeners, i;
  char *private_socket = NULL;
  const char *socket_to_remove = NULL;
  struct captive_target target = { 0 };
  sigset_t wait_mask, original_mask;
  pid_t child = -1;
  int status, exit_code = EXIT_SUCCESS;

  zq_set_log_fn (engine_log);
  parse_options (argc, argv, &o);
  setup_signals (&wait_mask, &original_mask);

  nr_listeners = listen_activated (listeners);
  if (nr_listeners == -1)
    exit (EXIT_FAILURE);
  if (nr_listeners > 0 && (o.unix_socket || o.port || o.run)) {
    server_error ("socket activation cannot be combined with -U, -p or "
                  "--run");
    exit (EXIT_FAILURE);
  }

  if (export_open (&o) == -1)
    exit (EXIT_FAILURE);
  if (park_timer_start () == -1)
    goto fail;

  if (nr_listeners == 0) {
    if (o.run && !o.unix_socket && !o.port)
      o.unix_socket = "-";
    if (o.unix_socket && strcmp (o.unix_socket, "-") == 0) {
      private_socket = private_socket_path ();
      if (private_socket == NULL)
        goto fail;
      o.unix_socket = private_socket;
    }
    if (o.unix_socket) {
      nr_listeners = listen_unix (o.unix_socket, listeners);
      socket_to_remove = o.unix_socket;
      target.unix_socket = o.unix_socket;
    }
    else {
      target.tcp_addr = o.bind_addr ? o.bind_addr : DEFAULT_ADDR;
      target.tcp_port = o.port ? o.port : DEFAULT_PORT;
      nr_listeners = listen_tcp (target.tcp_addr, target.tcp_port,
                                 listeners);
    }
    if (nr_listeners == -1) {
      socket_to_remove = NULL;
      goto fail;
    }
    if (o.unix_socket)
      server_debug ("listening on %s", o.unix_socket);
    else
      server_debug ("listening on %s port %s", target.tcp_addr,
                    target.tcp_port);
  }

  if (o.run) {
    child = captive_start (o.run, &target, &original_mask);
    if (child == -1)
      goto fail;
  }

  status = serve (listeners, nr_listeners, child, &wait_mask);
  if (child > 0)
    exit_code = captive_exit_status (status);

  /* Stop taking connections and requests; finish those in flight. */
  atomic_store (&shutting_down, true);
  for (i = 0; i < nr_listeners; i++)
    close (listeners[i]);
  connections_shutdown ();
  connections_wait ();
  park_timer_stop ();
  if (zq_close (export.img) == -1) {
    server_error ("%s: the final flush failed; writes not flushed by a "
                  "client may be lost", o.image);
    if (exit_code == EXIT_SUCCESS)
      exit_code = EXIT_FAILURE;
  }
  if (socket_to_remove) {
    if (private_socket)
      remove_private_socket (private_socket);
    else
      unlink (socket_to_remove);
  }
  free (private_socket);
  return exit_code;

 fail:
  park_timer_stop ();
  zq_close (export.img);
  if (private_socket)
    remove_private_socket (private_socket);
  else if (socket_to_remove)
    unlink (socket_to_remove);
  free (private_socket);
  return EXIT_FAILURE;
}
