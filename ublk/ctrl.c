/* The control device, /dev/ublk-control: each command is an io_uring
 * URING_CMD whose 32-byte struct ublksrv_ctrl_cmd needs 128-byte SQEs.
 * Commands run one at a time, from the main thread.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ublk.h"

#define CONTROL_DEVICE "/dev/ublk-control"

struct ctrl {
  int fd;
  struct io_uring ring;
};

struct ctrl *
ctrl_open (void)
{
  struct ctrl *c = calloc (1, sizeof *c);
  int r;

  if (c == NULL) {
    ublk_error ("out of memory");
    return NULL;
  }
  c->fd = open (CONTROL_DEVICE, O_RDWR | O_CLOEXEC);
  if (c->fd == -1) {
    int err = errno;
    ublk_error ("%s: %m%s", CONTROL_DEVICE,
                err == ENOENT ? " (load the module: modprobe ublk_drv)"
                : err == EACCES || err == EPERM ? " (this needs root)" : "");
    free (c);
    errno = err;
    return NULL;
  }
  r = io_uring_queue_init (4, &c->ring, IORING_SETUP_SQE128);
  if (r < 0) {
    ublk_error ("io_uring_queue_init: %s", strerror (-r));
    close (c->fd);
    free (c);
    errno = -r;
    return NULL;
  }
  return c;
}

void
ctrl_close (struct ctrl *c)
{
  if (c == NULL)
    return;
  io_uring_queue_exit (&c->ring);
  close (c->fd);
  free (c);
}

/* Sends one command and waits for its answer: >= 0, or -errno. */
static int
ctrl_command (struct ctrl *c, unsigned op, const struct ublksrv_ctrl_cmd *cmd)
{
  struct io_uring_sqe *sqe = io_uring_get_sqe (&c->ring);
  struct io_uring_cqe *cqe;
  int r;

  if (sqe == NULL)
    return -EBUSY;
  memset (sqe, 0, 2 * sizeof *sqe);     /* a 128-byte SQE */
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = c->fd;
  sqe->cmd_op = op;
  memcpy (sqe->cmd, cmd, sizeof *cmd);
  r = io_uring_submit (&c->ring);
  if (r < 0)
    return r;
  do
    r = io_uring_wait_cqe (&c->ring, &cqe);
  while (r == -EINTR);
  if (r < 0)
    return r;
  r = cqe->res;
  io_uring_cqe_seen (&c->ring, cqe);
  return r;
}

static int
failed (const char *what, uint32_t dev_id, int r)
{
  ublk_error ("ublk device %u: %s failed: %s", (unsigned) dev_id, what,
              strerror (-r));
  errno = -r;
  return -1;
}

int
ctrl_add_dev (struct ctrl *c, struct device *dev)
{
  uint64_t wanted = UBLK_F_USER_COPY | UBLK_F_CMD_IOCTL_ENCODE |
                    (dev->zoned ? UBLK_F_ZONED : 0);
  struct ublksrv_ctrl_dev_info info = {
    .nr_hw_queues = (uint16_t) dev->queues,
    .queue_depth = (uint16_t) dev->depth,
    .max_io_buf_bytes = dev->max_io_bytes,
    .dev_id = UINT32_MAX,       /* the driver picks the number */
    .ublksrv_pid = getpid (),
    .flags = wanted,
  };
  struct ublksrv_ctrl_cmd cmd = {
    .dev_id = UINT32_MAX,
    .queue_id = UINT16_MAX,
    .addr = (uintptr_t) &info,
    .len = sizeof info,
  };
  int r = ctrl_command (c, UBLK_U_CMD_ADD_DEV, &cmd);

  if (r < 0) {
    /* Before 6.5 the driver knows neither user copy nor (before 6.3) the
     * ioctl-encoded commands, and refuses them with EINVAL.
     */
    ublk_error ("adding a ublk device failed: %s%s", strerror (-r),
                r != -EINVAL ? ""
                : dev->zoned ? " (zoned ublk devices need Linux 6.6 or later)"
                : " (zqcow2-ublk needs Linux 6.5 or later)");
    errno = -r;
    return -1;
  }
  dev->dev_id = info.dev_id;
  /* An older driver clears the flags it does not know. */
  if ((info.flags & wanted) != wanted) {
    ublk_error ("ublk device %u: the driver lacks %s (Linux 6.6 or later "
                "is needed)", (unsigned) info.dev_id,
                !(info.flags & UBLK_F_USER_COPY) ? "user copy" : "zones");
    ctrl_del_dev (c, info.dev_id);
    errno = ENOTSUP;
    return -1;
  }
  return 0;
}

int
ctrl_set_params (struct ctrl *c, const struct device *dev,
                 const struct zq_ublk_params *params)
{
  struct ublksrv_ctrl_cmd cmd = {
    .dev_id = dev->dev_id,
    .queue_id = UINT16_MAX,
    .addr = (uintptr_t) params,
    .len = sizeof *params,
  };
  int r = ctrl_command (c, UBLK_U_CMD_SET_PARAMS, &cmd);

  return r < 0 ? failed ("setting the parameters", dev->dev_id, r) : 0;
}

/* A command naming only the device (and, for START_DEV, our pid). */
static int
simple_command (struct ctrl *c, unsigned op, uint32_t dev_id, uint64_t data,
                const char *what)
{
  struct ublksrv_ctrl_cmd cmd = {
    .dev_id = dev_id,
    .queue_id = UINT16_MAX,
    .data = { data },
  };
  int r = ctrl_command (c, op, &cmd);

  return r < 0 ? failed (what, dev_id, r) : 0;
}

int
ctrl_start_dev (struct ctrl *c, uint32_t dev_id)
{
  return simple_command (c, UBLK_U_CMD_START_DEV, dev_id,
                         (uint64_t) getpid (), "starting");
}

int
ctrl_stop_dev (struct ctrl *c, uint32_t dev_id)
{
  return simple_command (c, UBLK_U_CMD_STOP_DEV, dev_id, 0, "stopping");
}

int
ctrl_del_dev (struct ctrl *c, uint32_t dev_id)
{
  return simple_command (c, UBLK_U_CMD_DEL_DEV, dev_id, 0, "deleting");
}
