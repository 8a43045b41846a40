/* --run: the command that lives for as long as the server does. */
#ifndef ZQ_SERVER_CAPTIVE_H
#define ZQ_SERVER_CAPTIVE_H

#include <signal.h>
#include <sys/types.h>

/* Where the command finds the server: a Unix socket path, or a TCP
 * address and port.
 */
struct captive_target {
  const char *unix_socket;
  const char *tcp_addr;
  const char *tcp_port;
};

/* Starts /bin/sh -c CMD with $uri (and $unixsocket, or $port) in its
 * environment and the signal mask child_mask.  Call it before any thread
 * exists.  Returns the child's pid, or -1.
 */
pid_t captive_start (const char *cmd, const struct captive_target *target,
                     const sigset_t *child_mask);

/* The exit status the server takes over from the command's wait status. */
int captive_exit_status (int wait_status);

#endif /* ZQ_SERVER_CAPTIVE_H */
