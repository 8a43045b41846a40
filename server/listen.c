/* Listening sockets (listen.h).  All are close-on-exec, so that the
 * --run command does not inherit them.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "listen.h"
#include "server.h"

/* systemd passes activated sockets from this descriptor on. */
#define FIRST_ACTIVATED_FD 3

int
listen_tcp (const char *addr, const char *port, int *fds)
{
  struct addrinfo hints = {
    .ai_family = AF_UNSPEC,
    .ai_socktype = SOCK_STREAM,
    .ai_flags = AI_PASSIVE | AI_ADDRCONFIG,
  };
  struct addrinfo *ai, *a;
  int n = 0, r, fd, one = 1;

  r = getaddrinfo (addr, port, &hints, &ai);
  if (r != 0) {
    server_error ("%s port %s: %s", addr ? addr : "*", port,
                  gai_strerror (r));
    return -1;
  }
  for (a = ai; a != NULL && n < MAX_LISTENERS; a = a->ai_next) {
    fd = socket (a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
                 a->ai_protocol);
    if (fd == -1)
      continue;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* Both families may be in the list: keep them on separate sockets. */
    if (a->ai_family == AF_INET6)
      setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind (fd, a->ai_addr, a->ai_addrlen) == -1 ||
        listen (fd, SOMAXCONN) == -1) {
      server_error ("%s port %s: %m", addr ? addr : "*", port);
      close (fd);
      continue;
    }
    fds[n++] = fd;
  }
  freeaddrinfo (ai);
  if (n == 0)
    server_error ("cannot listen on %s port %s", addr ? addr : "*", port);
  return n > 0 ? n : -1;
}

int
listen_unix (const char *path, int *fds)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd;

  if (strlen (path) >= sizeof sun.sun_path) {
    server_error ("%s: the socket path is too long (at most %zu bytes)",
                  path, sizeof sun.sun_path - 1);
    return -1;
  }
  strcpy (sun.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    server_error ("socket: %m");
    return -1;
  }
  if (bind (fd, (struct sockaddr *) &sun, sizeof sun) == -1 ||
      listen (fd, SOMAXCONN) == -1) {
    server_error ("%s: %m", path);
    close (fd);
    return -1;
  }
  fds[0] = fd;
  return 1;
}

/* The systemd protocol: LISTEN_PID names this process and LISTEN_FDS
 * counts the sockets from fd 3.  The variables are removed so that a
 * --run command never believes they are meant for it.
 */
int
listen_activated (int *fds)
{
  const char *pid = getenv ("LISTEN_PID");
  const char *count = getenv ("LISTEN_FDS");
  char *end;
  long n;
  int i;

  if (pid == NULL || count == NULL || strtol (pid, &end, 10) != getpid () ||
      *end != '\0')
    return 0;
  n = strtol (count, &end, 10);
  unsetenv ("LISTEN_PID");
  unsetenv ("LISTEN_FDS");
  unsetenv ("LISTEN_FDNAMES");
  if (*end != '\0' || n < 1 || n > MAX_LISTENERS) {
    server_error ("socket activation: LISTEN_FDS=%s is not a number of "
                  "sockets between 1 and %d", count, MAX_LISTENERS);
    return -1;
  }
  for (i = 0; i < n; i++) {
    fds[i] = FIRST_ACTIVATED_FD + i;
    fcntl (fds[i], F_SETFD, FD_CLOEXEC);
  }
  return n;
}

char *
private_socket_path (void)
{
  const char *tmpdir = getenv ("TMPDIR");
  char *dir, *path;

  if (tmpdir == NULL || *tmpdir == '\0')
    tmpdir = "/tmp";
  if (asprintf (&dir, "%s/zqcow2-nbd.XXXXXX", tmpdir) == -1) {
    server_error ("%m");
    return NULL;
  }
  if (mkdtemp (dir) == NULL) {
    server_error ("%s: cannot make a private directory: %m", dir);
    free (dir);
    return NULL;
  }
  if (asprintf (&path, "%s/socket", dir) == -1) {
    server_error ("%m");
    rmdir (dir);
    path = NULL;
  }
  free (dir);
  return path;
}

void
remove_private_socket (const char *path)
{
  char *copy = strdup (path);

  unlink (path);
  if (copy) {
    rmdir (dirname (copy));
    free (copy);
  }
}
