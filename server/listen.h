/* Listening sockets: TCP, a Unix socket, or those systemd socket
 * activation passed in.
 */
#ifndef ZQ_SERVER_LISTEN_H
#define ZQ_SERVER_LISTEN_H

#include <stddef.h>

#define MAX_LISTENERS 16

/* Each fills fds[] (up to MAX_LISTENERS) and returns how many, or -1
 * after logging why.
 */
int listen_tcp (const char *addr, const char *port, int *fds);
int listen_unix (const char *path, int *fds);
/* 0 when this process was not socket-activated. */
int listen_activated (int *fds);

/* The path of a Unix socket in a new private directory, for --run
 * without -U; remove it with remove_private_socket.
 */
char *private_socket_path (void);
void remove_private_socket (const char *path);

#endif /* ZQ_SERVER_LISTEN_H */
