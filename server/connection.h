/* One client connection: what negotiation decided, and the requests in
 * flight.
 *
 * A connection runs on its own thread, which negotiates and then reads
 * requests.  It hands each request to a pool of worker threads, so that
 * several requests of one client run at once (the zone engine needs that
 * to let pipelined writes to a zone meet in order) and complete in any
 * order.  Request slots, with their buffers, come from a fixed pool per
 * connection and are reused: in steady state a request costs no malloc,
 * and a client that sends faster than the engine works is held back when
 * the pool runs dry.
 *
 * A write ahead of its zone's write pointer does not hold a worker while
 * it waits for the writes before it: the engine parks it (zq_park) and
 * wakes it, through request_wake, once it may be retried, and a worker
 * takes it up again.  The reader goes on reading meanwhile, so the write
 * at the pointer always arrives, on this connection or another.  There
 * are enough slots for the 128 requests the Linux kernel's client keeps
 * in flight per connection, so parked writes hold at most 128 requests
 * of at most 32 MiB each; a client with more in flight is not read from
 * until a slot frees, and if the write its parked writes wait for is
 * among those unread ones, they fail with EIO after the engine's wait.
 *
 * Lock order: the engine's zone lock, then conn->lock (the engine calls
 * request_wake with its lock held); conn->lock is never held across an
 * engine call.
 */
#ifndef ZQ_SERVER_CONNECTION_H
#define ZQ_SERVER_CONNECTION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zqcow2.h"

#define WORKERS_PER_CONNECTION  16
#define REQUESTS_PER_CONNECTION 128

struct request {
  struct request *next;         /* in the free list or the queue */
  struct connection *conn;      /* the slot's owner, for request_wake */
  struct zq_park park;          /* a write parked in the engine */
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint64_t offset;
  uint32_t count;
  int error;                    /* refused on arrival: the errno to send */
  const char *why;              /* ... and why, for the client */
  /* Write payload, read data or encoded extents.  Grows to the largest
   * need seen and is kept for the next request in this slot.
   */
  uint8_t *buf;
  size_t buf_size;
};

struct connection {
  int fd;
  struct connection *next, *prev; /* all connections, for shutdown */

  /* What negotiation settled. */
  bool structured_replies;
  bool no_zeroes;
  unsigned meta_contexts;       /* selected: CTX_BIT (meta-context.h) */
  uint16_t eflags;              /* transmission flags sent */

  /* Replies from different workers go out whole, one at a time. */
  pthread_mutex_t send_lock;
  atomic_bool dead;             /* a send failed: stop reading too */

  /* The request pool and the queue to the workers. */
  pthread_mutex_t lock;
  pthread_cond_t work;          /* queue not empty, or closed */
  pthread_cond_t slot_free;
  struct request *free_requests;
  struct request *queue_head, *queue_tail;
  bool queue_closed;            /* the reader has stopped */
  /* Writes parked in the engine, to come back to the queue; -1 for a
   * moment when one is woken before its worker counted it.
   */
  int nr_parked;
  struct request requests[REQUESTS_PER_CONNECTION];
  pthread_t workers[WORKERS_PER_CONNECTION];
  unsigned nr_workers;
};

/* connection.c */
struct request *request_get (struct connection *conn);
void request_put (struct connection *conn, struct request *req);
void request_queue (struct connection *conn, struct request *req);
int request_buffer (struct request *req, size_t size);
int workers_start (struct connection *conn);
void workers_stop (struct connection *conn);
void connection_fail (struct connection *conn);
void request_parked (struct connection *conn);

/* protocol.c: option haggling.  Returns 0 to go on to transmission, -1
 * when the connection should close.
 */
int negotiate (struct connection *conn);

/* transmission.c */
void transmission (struct connection *conn);
/* Returns false when the request was parked: request_wake queues it
 * again, and the slot stays taken.
 */
bool execute_request (struct connection *conn, struct request *req);

/* reply.c: each returns 0, or -1 when the connection is lost; it is then
 * marked dead and the reader stops, so callers need do nothing more.
 */
int reply_simple (struct connection *conn, const struct request *req,
                  int error, const void *data, size_t len);
int reply_chunk (struct connection *conn, const struct request *req,
                 uint16_t flags, uint16_t type,
                 const void *head, size_t head_len,
                 const void *data, size_t data_len);
int reply_error (struct connection *conn, const struct request *req,
                 int error, const char *message);
int reply_ok (struct connection *conn, const struct request *req);
uint32_t nbd_error (int error);

/* block-status.c: the whole reply to NBD_CMD_BLOCK_STATUS. */
int block_status (struct connection *conn, struct request *req);

#endif /* ZQ_SERVER_CONNECTION_H */
