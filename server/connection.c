/* The life of a connection: its thread, its request pool, its workers
 * (connection.h), and the list of live connections that a shutdown walks.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "connection.h"
#include "server.h"

/* How long a shutdown lets in-flight requests finish and their replies
 * drain before cutting the sockets outright.
 */
#define SHUTDOWN_GRACE_SECONDS 5

static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t list_empty = PTHREAD_COND_INITIALIZER;
static struct connection *connections;

static void
list_add (struct connection *conn)
{
  pthread_mutex_lock (&list_lock);
  conn->next = connections;
  conn->prev = NULL;
  if (connections)
    connections->prev = conn;
  connections = conn;
  pthread_mutex_unlock (&list_lock);
}

/* Removes and closes under the lock, so that a shutdown never calls
 * shutdown(2) on a descriptor number already reused.
 */
static void
list_remove_and_close (struct connection *conn)
{
  pthread_mutex_lock (&list_lock);
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    connections = conn->next;
  if (conn->next)
    conn->next->prev = conn->prev;
  close (conn->fd);
  if (connections == NULL)
    pthread_cond_broadcast (&list_empty);
  pthread_mutex_unlock (&list_lock);
}

static void request_wake (struct zq_park *park);

static void
connection_free (struct connection *conn)
{
  unsigned i;

  for (i = 0; i < REQUESTS_PER_CONNECTION; i++)
    free (conn->requests[i].buf);
  pthread_mutex_destroy (&conn->send_lock);
  pthread_mutex_destroy (&conn->lock);
  pthread_cond_destroy (&conn->work);
  pthread_cond_destroy (&conn->slot_free);
  free (conn);
}

static void *
connection_thread (void *opaque)
{
  struct connection *conn = opaque;

  server_debug ("connection %d: negotiating", conn->fd);
  if (negotiate (conn) == 0) {
    server_debug ("connection %d: transmission phase%s", conn->fd,
                  conn->structured_replies ? ", structured replies" : "");
    if (workers_start (conn) == 0)
      transmission (conn);
    workers_stop (conn);
  }
  server_debug ("connection %d: closed", conn->fd);
  list_remove_and_close (conn);
  connection_free (conn);
  return NULL;
}

int
connection_start (int fd)
{
  struct connection *conn;
  pthread_attr_t attr;
  pthread_t thread;
  unsigned i;
  int err;

  conn = calloc (1, sizeof *conn);
  if (conn == NULL) {
    server_error ("connection: %m");
    close (fd);
    return -1;
  }
  conn->fd = fd;
  pthread_mutex_init (&conn->send_lock, NULL);
  pthread_mutex_init (&conn->lock, NULL);
  pthread_cond_init (&conn->work, NULL);
  pthread_cond_init (&conn->slot_free, NULL);
  for (i = 0; i < REQUESTS_PER_CONNECTION; i++) {
    conn->requests[i].conn = conn;
    conn->requests[i].park.wake = request_wake;
    conn->requests[i].next = conn->free_requests;
    conn->free_requests = &conn->requests[i];
  }

  list_add (conn);
  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  err = pthread_create (&thread, &attr, connection_thread, conn);
  pthread_attr_destroy (&attr);
  if (err != 0) {
    errno = err;
    server_error ("cannot start a thread for a new connection: %m");
    list_remove_and_close (conn);
    connection_free (conn);
    return -1;
  }
  return 0;
}

/* Takes a free request slot, waiting for one if all are in flight. */
struct request *
request_get (struct connection *conn)
{
  struct request *req;

  pthread_mutex_lock (&conn->lock);
  while (conn->free_requests == NULL)
    pthread_cond_wait (&conn->slot_free, &conn->lock);
  req = conn->free_requests;
  conn->free_requests = req->next;
  pthread_mutex_unlock (&conn->lock);
  req->next = NULL;
  req->error = 0;
  return req;
}

void
request_put (struct connection *conn, struct request *req)
{
  pthread_mutex_lock (&conn->lock);
  req->next = conn->free_requests;
  conn->free_requests = req;
  pthread_mutex_unlock (&conn->lock);
  pthread_cond_signal (&conn->slot_free);
}

/* Makes the slot's buffer at least size bytes.  Only grows, so a client
 * whose requests keep the same sizes stops allocating after the first few.
 */
int
request_buffer (struct request *req, size_t size)
{
  uint8_t *buf;

  if (size <= req->buf_size)
    return 0;
  buf = realloc (req->buf, size);
  if (buf == NULL) {
    errno = ENOMEM;
    return -1;
  }
  req->buf = buf;
  req->buf_size = size;
  return 0;
}

/* FIFO, so that requests start in the order they came: a write at a
 * zone's write pointer is picked up before the writes queued behind it.
 */
void
request_queue (struct connection *conn, struct request *req)
{
  pthread_mutex_lock (&conn->lock);
  req->next = NULL;
  if (conn->queue_tail)
    conn->queue_tail->next = req;
  else
    conn->queue_head = req;
  conn->queue_tail = req;
  pthread_mutex_unlock (&conn->lock);
  /* After the unlock, so that the worker woken does not block on it. */
  pthread_cond_signal (&conn->work);
}

/* The engine says a parked write may be retried: it goes to the head of
 * the queue, as the writes behind it in its zone wait for it.  With the
 * engine's zone lock held.
 */
static void
request_wake (struct zq_park *park)
{
  struct request *req = (struct request *)
    ((char *) park - offsetof (struct request, park));
  struct connection *conn = req->conn;

  pthread_mutex_lock (&conn->lock);
  req->next = conn->queue_head;
  conn->queue_head = req;
  if (conn->queue_tail == NULL)
    conn->queue_tail = req;
  conn->nr_parked--;
  /* When closed, every worker is waiting for the parked to drain.  The
   * signal goes under the lock: this thread is not one of the
   * connection's, and once the lock is released the last worker may
   * leave and the connection be freed.
   */
  if (conn->queue_closed)
    pthread_cond_broadcast (&conn->work);
  else
    pthread_cond_signal (&conn->work);
  pthread_mutex_unlock (&conn->lock);
}

/* A worker left a request parked in the engine.  It may have been woken
 * already (nr_parked is then -1 for a moment).
 */
void
request_parked (struct connection *conn)
{
  pthread_mutex_lock (&conn->lock);
  conn->nr_parked++;
  pthread_mutex_unlock (&conn->lock);
}

static void *
worker_thread (void *opaque)
{
  struct connection *conn = opaque;
  struct request *req;

  for (;;) {
    pthread_mutex_lock (&conn->lock);
    while (conn->queue_head == NULL &&
           !(conn->queue_closed && conn->nr_parked == 0))
      pthread_cond_wait (&conn->work, &conn->lock);
    req = conn->queue_head;
    if (req == NULL) {          /* closed, drained, nothing parked */
      pthread_cond_broadcast (&conn->work);
      pthread_mutex_unlock (&conn->lock);
      return NULL;
    }
    conn->queue_head = req->next;
    if (conn->queue_head == NULL)
      conn->queue_tail = NULL;
    pthread_mutex_unlock (&conn->lock);

    if (execute_request (conn, req))
      request_put (conn, req);
    else
      request_parked (conn);
  }
}

int
workers_start (struct connection *conn)
{
  unsigned i;
  int err;

  for (i = 0; i < WORKERS_PER_CONNECTION; i++) {
    err = pthread_create (&conn->workers[i], NULL, worker_thread, conn);
    if (err != 0) {
      errno = err;
      server_error ("cannot start worker threads: %m");
      return conn->nr_workers > 0 ? 0 : -1;
    }
    conn->nr_workers++;
  }
  return 0;
}

/* Lets the workers finish every queued request, and every parked one
 * (each comes back when its turn comes or its wait expires), then joins
 * them.
 */
void
workers_stop (struct connection *conn)
{
  unsigned i;

  pthread_mutex_lock (&conn->lock);
  conn->queue_closed = true;
  pthread_cond_broadcast (&conn->work);
  pthread_mutex_unlock (&conn->lock);
  for (i = 0; i < conn->nr_workers; i++)
    pthread_join (conn->workers[i], NULL);
  conn->nr_workers = 0;
}

/* A reply could not be sent: the connection is unusable.  Waking the
 * reader with shutdown(2) ends it; requests still queued are executed
 * (they may be writes the client expects) but their replies go nowhere.
 */
void
connection_fail (struct connection *conn)
{
  if (!atomic_exchange (&conn->dead, true))
    shutdown (conn->fd, SHUT_RDWR);
}

/* Stops every connection from reading further requests.  Requests already
 * read still run and get their replies.
 */
void
connections_shutdown (void)
{
  struct connection *conn;

  pthread_mutex_lock (&list_lock);
  for (conn = connections; conn; conn = conn->next)
    shutdown (conn->fd, SHUT_RD);
  pthread_mutex_unlock (&list_lock);
}

/* Waits until every connection has closed.  A client that does not read
 * its replies could hold a worker in send(2) forever, so after a grace
 * period the sockets are cut in both directions.
 */
void
connections_wait (void)
{
  struct timespec deadline;
  struct connection *conn;
  int r = 0;

  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += SHUTDOWN_GRACE_SECONDS;

  pthread_mutex_lock (&list_lock);
  while (connections != NULL && r != ETIMEDOUT)
    r = pthread_cond_timedwait (&list_empty, &list_lock, &deadline);
  if (connections != NULL) {
    for (conn = connections; conn; conn = conn->next)
      shutdown (conn->fd, SHUT_RDWR);
    while (connections != NULL)
      pthread_cond_wait (&list_empty, &list_lock);
  }
  pthread_mutex_unlock (&list_lock);
}
