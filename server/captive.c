/* --run CMD: like nbdkit's captive mode, the server serves for exactly the
 * life of one command, which finds it through $uri.
 */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "captive.h"
#include "server.h"

/* Appends s to out, percent-encoding everything but RFC 3986 unreserved
 * characters and those in keep.
 */
static void
uri_append (FILE *out, const char *s, const char *keep)
{
  for (; *s; s++) {
    unsigned char c = *s;

    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || strchr ("-._~", c) || strchr (keep, c))
      fputc (c, out);
    else
      fprintf (out, "%%%02X", c);
  }
}

/* nbd+unix:///NAME?socket=PATH, or nbd://HOST:PORT/NAME. */
static char *
make_uri (const struct captive_target *target)
{
  char *uri = NULL;
  size_t len;
  FILE *out = open_memstream (&uri, &len);

  if (out == NULL)
    return NULL;
  if (target->unix_socket) {
    fputs ("nbd+unix:///", out);
    uri_append (out, export.name, "");
    fputs ("?socket=", out);
    uri_append (out, target->unix_socket, "/");
  }
  else {
    bool ipv6 = strchr (target->tcp_addr, ':') != NULL;

    fprintf (out, "nbd://%s%s%s:%s/", ipv6 ? "[" : "", target->tcp_addr,
             ipv6 ? "]" : "", target->tcp_port);
    uri_append (out, export.name, "");
  }
  if (fclose (out) == EOF) {
    free (uri);
    return NULL;
  }
  return uri;
}

pid_t
captive_start (const char *cmd, const struct captive_target *target,
               const sigset_t *child_mask)
{
  char *uri = make_uri (target);
  pid_t pid;

  if (uri == NULL) {
    server_error ("--run: %m");
    return -1;
  }
  pid = fork ();
  if (pid == -1) {
    server_error ("--run: fork: %m");
    free (uri);
    return -1;
  }
  if (pid == 0) {
    /* No other thread exists yet, so setenv is safe here. */
    setenv ("uri", uri, 1);
    if (target->unix_socket) {
      setenv ("unixsocket", target->unix_socket, 1);
      unsetenv ("port");
    }
    else {
      setenv ("port", target->tcp_port, 1);
      unsetenv ("unixsocket");
    }
    signal (SIGPIPE, SIG_DFL);
    sigprocmask (SIG_SETMASK, child_mask, NULL);
    execl ("/bin/sh", "sh", "-c", cmd, (char *) NULL);
    fprintf (stderr, "%s: --run: /bin/sh: %s\n", PROGRAM_NAME,
             strerror (errno));
    _exit (127);
  }
  server_debug ("--run: started process %ld with uri=%s", (long) pid, uri);
  free (uri);
  return pid;
}

int
captive_exit_status (int wait_status)
{
  if (WIFEXITED (wait_status))
    return WEXITSTATUS (wait_status);
  if (WIFSIGNALED (wait_status)) {
    server_error ("--run: the command was killed by signal %d",
                  WTERMSIG (wait_status));
    return 128 + WTERMSIG (wait_status);
  }
  return 1;
}
