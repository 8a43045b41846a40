/* One hardware queue.  The ublk driver takes a queue's commands only
 * from the thread that fetched for it, so that thread owns the queue's
 * io_uring: it fetches a request for every tag, hands each request that
 * arrives to its tag's thread, and commits the results those threads
 * post back (through an eventfd the ring reads), fetching again in the
 * same command.  A tag's thread runs its request in the engine, which
 * may block (a zone write waits for the writes before it), without
 * holding up the other tags.  No memory is allocated per request: each
 * tag has its buffer from the start.
 *
 * Locks: q->done_lock guards the list of finished tags; it is held only
 * to add or take entries.
 */
#include <config.h>

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ublk.h"

/* The user_data of the eventfd read; tags are below 2^16. */
#define EVENTFD_DATA UINT64_MAX

struct tag {
  struct queue *q;
  uint16_t tag;
  pthread_t thread;
  sem_t go;                     /* a request has arrived, or stop */
  int result;
  uint64_t append_sector;
  void *buf;                    /* IO_BUF_BYTES */
};

struct queue {
  struct device *dev;
  unsigned qid;
  pthread_t thread;
  struct io_uring ring;
  const struct ublksrv_io_desc *descs;  /* shared with the driver */
  size_t descs_bytes;
  int efd;
  uint64_t efd_count;           /* what the eventfd read fills */
  atomic_bool stopping;
  /* Set by queue_abandon: leave without waiting for the driver. */
  atomic_bool abandoned;
  /* Startup: the queue thread says how it went. */
  sem_t started;
  int start_error;
  pthread_mutex_t done_lock;
  uint16_t *done;               /* tags finished, not yet committed */
  unsigned nr_done;
  struct tag *tags;
};

/* Where the request of (qid, tag) is read and written in /dev/ublkcN. */
static uint64_t
buf_pos (unsigned qid, unsigned tag)
{
  return UBLKSRV_IO_BUF_OFFSET + ((uint64_t) qid << UBLK_QID_OFF) +
         ((uint64_t) tag << UBLK_TAG_OFF);
}

/* A free SQE, submitting the ones queued if the ring is full. */
static struct io_uring_sqe *
get_sqe (struct queue *q)
{
  struct io_uring_sqe *sqe = io_uring_get_sqe (&q->ring);

  if (sqe == NULL) {
    io_uring_submit (&q->ring);
    sqe = io_uring_get_sqe (&q->ring);
  }
  /* The ring has room for a command per tag and the eventfd read twice
   * over: never reached.
   */
  if (sqe == NULL) {
    ublk_error ("queue %u: no free io_uring entry", q->qid);
    abort ();
  }
  return sqe;
}

static void
queue_io_cmd (struct queue *q, unsigned op, uint16_t tag, int result,
              uint64_t addr)
{
  struct io_uring_sqe *sqe = get_sqe (q);
  struct ublksrv_io_cmd cmd = {
    .q_id = (uint16_t) q->qid, .tag = tag, .result = result, .addr = addr,
  };

  memset (sqe, 0, sizeof *sqe);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = q->dev->char_fd;
  sqe->cmd_op = op;
  memcpy (sqe->cmd, &cmd, sizeof cmd);
  sqe->user_data = tag;
}

static void
arm_eventfd (struct queue *q)
{
  struct io_uring_sqe *sqe = get_sqe (q);

  io_uring_prep_read (sqe, q->efd, &q->efd_count, sizeof q->efd_count, 0);
  sqe->user_data = EVENTFD_DATA;
}

/* Commits what the tag threads have finished, fetching again. */
static void
commit_done (struct queue *q)
{
  unsigned i;

  pthread_mutex_lock (&q->done_lock);
  for (i = 0; i < q->nr_done; i++) {
    struct tag *t = &q->tags[q->done[i]];
    queue_io_cmd (q, UBLK_U_IO_COMMIT_AND_FETCH_REQ, t->tag, t->result,
                  t->append_sector);
  }
  q->nr_done = 0;
  pthread_mutex_unlock (&q->done_lock);
}

static void *
tag_run (void *opaque)
{
  struct tag *t = opaque;
  struct queue *q = t->q;
  struct ublksrv_io_desc iod;
  uint64_t one = 1;

  for (;;) {
    while (sem_wait (&t->go) == -1 && errno == EINTR)
      ;
    if (atomic_load (&q->stopping))
      return NULL;
    /* The driver wrote the descriptor before completing the fetch. */
    memcpy (&iod, (const void *) &q->descs[t->tag], sizeof iod);
    t->append_sector = 0;
    t->result = request_run (q->dev, &iod, t->buf, buf_pos (q->qid, t->tag),
                             &t->append_sector);
    if (t->result < 0)
      ublk_debug ("queue %u tag %u: op %u at sector %llu: %s", q->qid,
                  t->tag, iod.op_flags & 0xff,
                  (unsigned long long) iod.start_sector,
                  strerror (-t->result));
    pthread_mutex_lock (&q->done_lock);
    q->done[q->nr_done++] = t->tag;
    pthread_mutex_unlock (&q->done_lock);
    if (write (q->efd, &one, sizeof one) != sizeof one)
      ublk_error ("queue %u: eventfd: %m", q->qid);
  }
}

/* Sets up the ring and the descriptors, fetches for every tag.  In the
 * queue thread: the driver ties the queue to the thread that fetches.
 */
static int
queue_setup (struct queue *q)
{
  long page = sysconf (_SC_PAGESIZE);
  unsigned i;
  int r;

  q->descs_bytes = (q->dev->depth * sizeof *q->descs + page - 1) /
                   page * page;
  q->descs = mmap (NULL, q->descs_bytes, PROT_READ, MAP_SHARED | MAP_POPULATE,
                   q->dev->char_fd,
                   UBLKSRV_CMD_BUF_OFFSET + (off_t) q->qid *
                   UBLK_MAX_QUEUE_DEPTH * sizeof *q->descs);
  if (q->descs == MAP_FAILED) {
    q->descs = NULL;
    ublk_error ("queue %u: mapping the request descriptors: %m", q->qid);
    return -errno;
  }
  r = io_uring_queue_init (q->dev->depth * 2 + 2, &q->ring, 0);
  if (r < 0) {
    ublk_error ("queue %u: io_uring_queue_init: %s", q->qid, strerror (-r));
    return r;
  }
  for (i = 0; i < q->dev->depth; i++)
    queue_io_cmd (q, UBLK_U_IO_FETCH_REQ, (uint16_t) i, 0, 0);
  arm_eventfd (q);
  r = io_uring_submit (&q->ring);
  if (r < 0) {
    ublk_error ("queue %u: submitting the first fetches: %s", q->qid,
                strerror (-r));
    io_uring_queue_exit (&q->ring);
    return r;
  }
  return 0;
}

static void *
queue_run (void *opaque)
{
  struct queue *q = opaque;
  unsigned live = q->dev->depth, i;

  q->start_error = queue_setup (q);
  sem_post (&q->started);
  if (q->start_error)
    return NULL;

  /* Until the driver has ended every tag's command (STOP_DEV aborts
   * them with UBLK_IO_RES_ABORT), or main() gives up on a device that
   * never started: leaving the ring then cancels the commands.
   */
  while (live > 0) {
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    int r = io_uring_submit_and_wait (&q->ring, 1);

    if (r < 0 && r != -EINTR) {
      ublk_error ("queue %u: io_uring: %s", q->qid, strerror (-r));
      break;
    }
    io_uring_for_each_cqe (&q->ring, head, cqe) {
      seen++;
      if (cqe->user_data == EVENTFD_DATA) {
        if (atomic_load (&q->abandoned)) {
          live = 0;
          break;
        }
        commit_done (q);
        arm_eventfd (q);
      }
      else if (cqe->res == UBLK_IO_RES_OK)
        sem_post (&q->tags[cqe->user_data].go);
      else {
        if (cqe->res != UBLK_IO_RES_ABORT)
          ublk_error ("queue %u tag %u: the driver refused a command: %s",
                      q->qid, (unsigned) cqe->user_data,
                      strerror (-cqe->res));
        live--;
      }
    }
    io_uring_cq_advance (&q->ring, seen);
  }

  atomic_store (&q->stopping, true);
  for (i = 0; i < q->dev->depth; i++)
    sem_post (&q->tags[i].go);
  for (i = 0; i < q->dev->depth; i++)
    pthread_join (q->tags[i].thread, NULL);
  io_uring_queue_exit (&q->ring);
  return NULL;
}

static void
queue_free (struct queue *q)
{
  unsigned i;

  if (q->tags)
    for (i = 0; i < q->dev->depth; i++) {
      free (q->tags[i].buf);
      sem_destroy (&q->tags[i].go);
    }
  if (q->descs)
    munmap ((void *) q->descs, q->descs_bytes);
  if (q->efd >= 0)
    close (q->efd);
  free (q->tags);
  free (q->done);
  sem_destroy (&q->started);
  pthread_mutex_destroy (&q->done_lock);
  free (q);
}

struct queue *
queue_start (struct device *dev, unsigned qid)
{
  struct queue *q = calloc (1, sizeof *q);
  unsigned i, threads = 0;

  if (q == NULL)
    goto nomem;
  q->dev = dev;
  q->qid = qid;
  q->efd = -1;
  pthread_mutex_init (&q->done_lock, NULL);
  sem_init (&q->started, 0, 0);
  q->tags = calloc (dev->depth, sizeof *q->tags);
  q->done = calloc (dev->depth, sizeof *q->done);
  if (q->tags == NULL || q->done == NULL)
    goto nomem;
  for (i = 0; i < dev->depth; i++) {
    q->tags[i] = (struct tag) { .q = q, .tag = (uint16_t) i };
    sem_init (&q->tags[i].go, 0, 0);
    if (posix_memalign (&q->tags[i].buf, 4096, IO_BUF_BYTES) != 0)
      goto nomem;
  }
  q->efd = eventfd (0, EFD_CLOEXEC);
  if (q->efd == -1) {
    ublk_error ("eventfd: %m");
    goto fail;
  }
  for (threads = 0; threads < dev->depth; threads++)
    if ((errno = pthread_create (&q->tags[threads].thread, NULL, tag_run,
                                 &q->tags[threads])) != 0) {
      ublk_error ("queue %u: starting a thread: %m", qid);
      goto fail;
    }
  if ((errno = pthread_create (&q->thread, NULL, queue_run, q)) != 0) {
    ublk_error ("queue %u: starting a thread: %m", qid);
    goto fail;
  }
  while (sem_wait (&q->started) == -1 && errno == EINTR)
    ;
  if (q->start_error) {
    pthread_join (q->thread, NULL);
    goto fail;
  }
  return q;

 nomem:
  ublk_error ("out of memory");
 fail:
  if (q) {
    atomic_store (&q->stopping, true);
    for (i = 0; i < threads; i++) {
      sem_post (&q->tags[i].go);
      pthread_join (q->tags[i].thread, NULL);
    }
    queue_free (q);
  }
  return NULL;
}

void
queue_abandon (struct queue *q)
{
  uint64_t one = 1;

  atomic_store (&q->abandoned, true);
  if (write (q->efd, &one, sizeof one) != sizeof one)
    ublk_error ("queue %u: eventfd: %m", q->qid);
}

void
queue_join (struct queue *q)
{
  pthread_join (q->thread, NULL);
  queue_free (q);
}
