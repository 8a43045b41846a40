/* zqcow2-ublk: what the parts of the ublk front end share.
 *
 * main.c opens the engine, adds the ublk device and serves it until a
 * signal; options.c reads the command line; ctrl.c speaks to
 * /dev/ublk-control (add, parameters, start, stop, delete); params.c
 * derives the device's parameters from the image; queue.c runs each
 * hardware queue: one thread owns the queue's io_uring and talks to the
 * driver, one thread per tag runs that tag's request; request.c turns
 * one request into engine calls; report.c encodes zone reports.
 */
#ifndef ZQ_UBLK_H
#define ZQ_UBLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine-options.h"
#include "ublk-compat.h"
#include "zqcow2.h"

#define PROGRAM_NAME "zqcow2-ublk"

#define DEFAULT_QUEUES 1
#define MAX_QUEUES 16
#define DEFAULT_DEPTH 64
#define MAX_DEPTH 1024
/* The largest request, and so each tag's buffer: 512 KiB. */
#define IO_BUF_BYTES (UINT32_C (512) << 10)

struct options {
  const char *image;
  bool readonly;
  unsigned queues, depth;
  bool foreground;
  const char *pidfile;
  int delete_id;                /* --delete N; -1: none */
  struct engine_options engine;
};

/* Exits with a message on a bad command line, and for --help, --version. */
void parse_options (int argc, char *argv[], struct options *o);

/* The device, fixed once it is added. */
struct device {
  struct zq_image *img;
  const char *image;
  uint64_t size;
  struct zq_block_limits limits;        /* the engine's */
  bool readonly;
  bool zoned;
  struct zq_zone_geometry geometry;     /* zoned images only */
  unsigned queues, depth;
  uint32_t max_io_bytes;        /* the largest request: our buffers' size,
                                   or the engine's maximum if lower */
  uint32_t dev_id;              /* as the driver assigned it */
  int char_fd;                  /* /dev/ublkcN */
};

/* main.c: messages to stderr, prefixed with the program name. */
extern bool verbose;
void ublk_error (const char *fs, ...) __attribute__ ((format (printf, 1, 2)));
void ublk_debug (const char *fs, ...) __attribute__ ((format (printf, 1, 2)));

/* ctrl.c: the control device.  Each returns 0, or -1 with the reason
 * logged and errno set.
 */
struct ctrl;
struct ctrl *ctrl_open (void);
void ctrl_close (struct ctrl *c);
/* Adds a device with dev's queues, depth and buffer size; sets
 * dev->dev_id.
 */
int ctrl_add_dev (struct ctrl *c, struct device *dev);
int ctrl_set_params (struct ctrl *c, const struct device *dev,
                     const struct zq_ublk_params *params);
/* Returns once every queue has fetched its first requests. */
int ctrl_start_dev (struct ctrl *c, uint32_t dev_id);
int ctrl_stop_dev (struct ctrl *c, uint32_t dev_id);
int ctrl_del_dev (struct ctrl *c, uint32_t dev_id);

/* params.c: the parameters the kernel is given for dev. */
void device_params (const struct device *dev, struct zq_ublk_params *p);

/* queue.c: starts queue qid's threads; they fetch requests until the
 * device stops.
 */
struct queue;
struct queue *queue_start (struct device *dev, unsigned qid);
/* Makes the queue's threads end without waiting for the driver to abort
 * their commands, for a device that did not start.
 */
void queue_abandon (struct queue *q);
/* Waits for the queue's threads (after STOP_DEV) and frees it. */
void queue_join (struct queue *q);

/* request.c: runs one request.  Data moves through buf (IO_BUF_BYTES)
 * and the request's buffer at buf_pos in /dev/ublkcN.  Returns the result
 * to commit: bytes transferred, or -errno; *append_sector is set for a
 * zone append.
 */
struct ublksrv_io_desc;
int request_run (const struct device *dev, const struct ublksrv_io_desc *iod,
                 void *buf, uint64_t buf_pos, uint64_t *append_sector);

#endif /* ZQ_UBLK_H */
