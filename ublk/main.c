/* zqcow2-ublk: a qcow2 image, zoned or not, as the Linux block device
 * /dev/ublkbN.
 *
 * main() reads the command line, opens the engine, adds the ublk device
 * with the image's parameters, starts one thread per queue and starts
 * the device.  It then prints the device's name and (unless
 * --foreground) detaches.  On SIGINT or SIGTERM it stops the device,
 * which flushes it and ends the queues, deletes it and closes the
 * engine, which flushes the image.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "front-log.h"
#include "ublk.h"

bool verbose;

void
ublk_error (const char *fs, ...)
{
  va_list args;

  va_start (args, fs);
  front_vlog (PROGRAM_NAME, "", fs, args);
  va_end (args);
}

void
ublk_debug (const char *fs, ...)
{
  va_list args;

  if (!verbose)
    return;
  va_start (args, fs);
  front_vlog (PROGRAM_NAME, "debug: ", fs, args);
  va_end (args);
}

static void
engine_log (enum zq_log_level level, const char *message)
{
  if (level == ZQ_LOG_ERROR)
    fprintf (stderr, "%s: %s\n", PROGRAM_NAME, message);
  else if (level == ZQ_LOG_WARNING)
    fprintf (stderr, "%s: warning: %s\n", PROGRAM_NAME, message);
  else if (verbose)
    fprintf (stderr, "%s: debug: %s\n", PROGRAM_NAME, message);
}

static int
open_image (const struct options *o, struct device *dev)
{
  const struct zq_open_options open_options =
    engine_open_options (&o->engine, o->image, o->readonly);

  dev->img = zq_open (&open_options);
  if (dev->img == NULL)
    return -1;                  /* the engine said why */
  dev->image = o->image;
  dev->size = zq_virtual_size (dev->img);
  zq_block_limits (dev->img, &dev->limits);
  dev->readonly = o->readonly || zq_is_readonly (dev->img);
  dev->zoned = zq_is_zoned (dev->img);
  dev->queues = o->queues;
  dev->depth = o->depth;
  dev->max_io_bytes = dev->limits.maximum < IO_BUF_BYTES
                      ? dev->limits.maximum / 4096 * 4096 : IO_BUF_BYTES;
  dev->char_fd = -1;
  if (dev->zoned) {
    if (zq_zone_geometry (dev->img, &dev->geometry) == -1)
      return -1;
    if (dev->size % dev->geometry.zone_size != 0) {
      ublk_error ("%s: the last zone is short (%llu bytes of %llu); the "
                  "ublk driver needs whole zones", o->image,
                  (unsigned long long) (dev->size % dev->geometry.zone_size),
                  (unsigned long long) dev->geometry.zone_size);
      return -1;
    }
  }
  else if (o->engine.offline_zones || o->engine.readonly_zones)
    ublk_error ("warning: %s is not zoned; --offline-zones and "
                "--readonly-zones do nothing", o->image);
  if (dev->size % 512 != 0) {
    ublk_error ("%s: the size (%llu) is not a multiple of 512 bytes",
                o->image, (unsigned long long) dev->size);
    return -1;
  }
  return 0;
}

/* /dev/ublkcN appears once the device is added (devtmpfs or udev). */
static int
open_char_device (struct device *dev)
{
  char path[64];
  int tries;

  snprintf (path, sizeof path, "/dev/ublkc%u", (unsigned) dev->dev_id);
  for (tries = 0; tries < 100; tries++) {
    dev->char_fd = open (path, O_RDWR | O_CLOEXEC);
    if (dev->char_fd >= 0 || errno != ENOENT)
      break;
    nanosleep (&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
  }
  if (dev->char_fd == -1) {
    ublk_error ("%s: %m", path);
    return -1;
  }
  return 0;
}

/* Forks; the parent waits for the child to say the device is up (a byte
 * on the pipe) and exits 0, or 1 if the child failed first.  Returns the
 * pipe's write end in the child.
 */
static int
detach (void)
{
  int fds[2];
  pid_t pid;
  char ok;

  if (pipe (fds) == -1) {
    ublk_error ("pipe: %m");
    exit (EXIT_FAILURE);
  }
  pid = fork ();
  if (pid == -1) {
    ublk_error ("fork: %m");
    exit (EXIT_FAILURE);
  }
  if (pid > 0) {
    close (fds[1]);
    _exit (read (fds[0], &ok, 1) == 1 ? EXIT_SUCCESS : EXIT_FAILURE);
  }
  close (fds[0]);
  setsid ();
  return fds[1];
}

static int
write_pidfile (const char *pidfile)
{
  FILE *f = fopen (pidfile, "w");

  if (f == NULL || fprintf (f, "%d\n", (int) getpid ()) < 0 ||
      fclose (f) != 0) {
    ublk_error ("%s: %m", pidfile);
    return -1;
  }
  return 0;
}

static int
delete_device (int dev_id)
{
  struct ctrl *c = ctrl_open ();
  int r;

  if (c == NULL)
    return EXIT_FAILURE;
  /* Stopping a device that is already stopped does nothing. */
  ctrl_stop_dev (c, (uint32_t) dev_id);
  r = ctrl_del_dev (c, (uint32_t) dev_id);
  ctrl_close (c);
  return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

int
main (int argc, char *argv[])
{
  struct options o = { 0 };
  struct device dev = { 0 };
  struct zq_ublk_params params;
  struct queue *queues[MAX_QUEUES];
  struct ctrl *ctrl = NULL;
  sigset_t quit_signals;
  unsigned started = 0, i;
  int ready_fd = -1, sig, exit_code = EXIT_FAILURE;
  bool added = false, running = false;

  zq_set_log_fn (engine_log);
  parse_options (argc, argv, &o);
  if (o.delete_id >= 0)
    return delete_device (o.delete_id);

  /* Every thread inherits the blocked signals; main() waits for them. */
  sigemptyset (&quit_signals);
  sigaddset (&quit_signals, SIGINT);
  sigaddset (&quit_signals, SIGTERM);
  sigprocmask (SIG_BLOCK, &quit_signals, NULL);
  signal (SIGPIPE, SIG_IGN);

  if (open_image (&o, &dev) == -1)
    goto out;
  /* Before any thread or ring: they belong to the serving process. */
  if (!o.foreground)
    ready_fd = detach ();

  ctrl = ctrl_open ();
  if (ctrl == NULL || ctrl_add_dev (ctrl, &dev) == -1)
    goto out;
  added = true;
  device_params (&dev, &params);
  if (ctrl_set_params (ctrl, &dev, &params) == -1 ||
      open_char_device (&dev) == -1)
    goto out;
  for (started = 0; started < dev.queues; started++)
    if ((queues[started] = queue_start (&dev, started)) == NULL)
      goto out;
  if (ctrl_start_dev (ctrl, dev.dev_id) == -1)
    goto out;
  running = true;
  if (o.pidfile && write_pidfile (o.pidfile) == -1)
    goto out;

  printf ("/dev/ublkb%u\n", (unsigned) dev.dev_id);
  fflush (stdout);
  ublk_debug ("%s: %s device /dev/ublkb%u, %u queue(s) of depth %u",
              o.image, dev.zoned ? "zoned" : "plain", (unsigned) dev.dev_id,
              dev.queues, dev.depth);
  if (ready_fd >= 0) {
    int null_fd = open ("/dev/null", O_RDWR);
    if (write (ready_fd, "", 1) != 1)
      ublk_error ("telling the parent the device is up: %m");
    close (ready_fd);
    ready_fd = -1;
    if (null_fd >= 0) {
      dup2 (null_fd, STDIN_FILENO);
      dup2 (null_fd, STDOUT_FILENO);
      close (null_fd);
    }
  }

  while (sigwait (&quit_signals, &sig) != 0)
    ;
  ublk_debug ("signal %d: removing /dev/ublkb%u", sig, (unsigned) dev.dev_id);
  exit_code = EXIT_SUCCESS;

 out:
  /* Stopping the device flushes it through the queues, then ends them. */
  if (running && ctrl_stop_dev (ctrl, dev.dev_id) == -1)
    exit_code = EXIT_FAILURE;
  for (i = 0; i < started; i++) {
    if (!running)
      queue_abandon (queues[i]);
    queue_join (queues[i]);
  }
  /* The driver frees the device once its character device is closed. */
  if (dev.char_fd >= 0)
    close (dev.char_fd);
  if (added && ctrl_del_dev (ctrl, dev.dev_id) == -1)
    exit_code = EXIT_FAILURE;
  ctrl_close (ctrl);
  if (dev.img && zq_close (dev.img) == -1) {
    ublk_error ("%s: the final flush failed; writes not flushed by the "
                "kernel may be lost", o.image);
    exit_code = EXIT_FAILURE;
  }
  if (o.pidfile && running)
    unlink (o.pidfile);
  return exit_code;
}
