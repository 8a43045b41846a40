/* A simulated power cut for one file, for test helpers linked with
 * libzqcow2: this file defines pwrite, pwritev and fdatasync, so the
 * engine's calls land here.  Writes to the traced file are done and
 * logged; an fdatasync that returns makes durable the writes that had
 * completed when it started, which are then copied to a shadow file
 * (what stable storage holds).  powercut_image makes what the disk could
 * hold after a power cut at this moment: the shadow, plus any subset of
 * the writes not yet synced, since a disk may keep some of them in any
 * order.  The engine must leave a consistent image in every case.
 *
 * All writes to the traced file are serialized by one mutex: slow, but
 * it makes "completed before the sync started" exact.
 *
 * The same wrapper also serves tests of what may run while a sync is in
 * progress: powercut_hold_sync stops one chosen fdatasync until the test
 * lets it go.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "powercut.h"

struct logged_write {
  uint64_t seq;
  uint64_t offset;
  size_t len;
  uint8_t *data;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int traced_fd = -1;
static int shadow_fd = -1;
static uint64_t next_seq = 1;
static struct logged_write *log_entries;
static size_t nr_logged, log_alloc;
static unsigned fail_every, nr_syncs;

/* The sync gate (powercut_hold_sync). */
static pthread_cond_t gate_changed = PTHREAD_COND_INITIALIZER;
static bool gate_armed, gate_holding, gate_released;
static uint64_t gate_offset, gate_end;

static ssize_t
real_pwrite (int fd, const void *buf, size_t count, off_t offset)
{
  return syscall (SYS_pwrite64, fd, buf, count, offset);
}

static int
write_all (int fd, const uint8_t *buf, size_t count, uint64_t offset)
{
  while (count > 0) {
    ssize_t r = real_pwrite (fd, buf, count, (off_t) offset);
    if (r <= 0)
      return -1;
    buf += r;
    count -= r;
    offset += r;
  }
  return 0;
}

/* lock held */
static void
log_write (const void *buf, size_t count, uint64_t offset)
{
  struct logged_write *w;

  if (nr_logged == log_alloc) {
    log_alloc = log_alloc ? log_alloc * 2 : 256;
    log_entries = realloc (log_entries, log_alloc * sizeof *log_entries);
    if (log_entries == NULL)
      abort ();
  }
  w = &log_entries[nr_logged++];
  w->seq = next_seq++;
  w->offset = offset;
  w->len = count;
  w->data = malloc (count);
  if (w->data == NULL)
    abort ();
  memcpy (w->data, buf, count);
}

ssize_t
pwrite (int fd, const void *buf, size_t count, off_t offset)
{
  ssize_t r;

  if (fd != traced_fd)
    return real_pwrite (fd, buf, count, offset);
  pthread_mutex_lock (&lock);
  r = real_pwrite (fd, buf, count, offset);
  if (r > 0)
    log_write (buf, (size_t) r, (uint64_t) offset);
  pthread_mutex_unlock (&lock);
  return r;
}

ssize_t
pwritev (int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
  ssize_t r = 0;

  if (fd != traced_fd)
    return syscall (SYS_pwritev, fd, iov, iovcnt, offset, 0);
  /* One logged write per buffer, all under the lock: as one write. */
  pthread_mutex_lock (&lock);
  for (int i = 0; i < iovcnt; i++) {
    if (write_all (fd, iov[i].iov_base, iov[i].iov_len,
                   (uint64_t) offset + r) == -1) {
      r = r > 0 ? r : -1;
      break;
    }
    log_write (iov[i].iov_base, iov[i].iov_len, (uint64_t) offset + r);
    r += iov[i].iov_len;
  }
  pthread_mutex_unlock (&lock);
  return r;
}

/* The writes logged before `upto` reach the shadow.  lock held. */
static void
make_durable (uint64_t upto)
{
  size_t n = 0, i;

  while (n < nr_logged && log_entries[n].seq < upto) {
    if (write_all (shadow_fd, log_entries[n].data, log_entries[n].len,
                   log_entries[n].offset) == -1)
      abort ();
    free (log_entries[n].data);
    n++;
  }
  for (i = n; i < nr_logged; i++)
    log_entries[i - n] = log_entries[i];
  nr_logged -= n;
}

/* Whether a write not yet durable overlaps the gate's range.  lock
 * held.
 */
static bool
gate_range_unsynced (void)
{
  for (size_t i = 0; i < nr_logged; i++)
    if (log_entries[i].offset < gate_end &&
        log_entries[i].offset + log_entries[i].len > gate_offset)
      return true;
  return false;
}

/* Holds this sync at the gate if it is armed for it.  lock held. */
static void
gate_pass (void)
{
  if (!gate_armed || !gate_range_unsynced ())
    return;
  gate_armed = false;
  gate_holding = true;
  pthread_cond_broadcast (&gate_changed);
  while (!gate_released)
    pthread_cond_wait (&gate_changed, &lock);
  gate_holding = false;
}

int
fdatasync (int fd)
{
  uint64_t upto;
  int r;

  if (fd != traced_fd)
    return syscall (SYS_fdatasync, fd);
  pthread_mutex_lock (&lock);
  /* What completed before the sync was called, held or not. */
  upto = next_seq;
  gate_pass ();
  if (fail_every > 0 && ++nr_syncs % fail_every == 0) {
    pthread_mutex_unlock (&lock);
    errno = EIO;                /* and nothing became durable */
    return -1;
  }
  pthread_mutex_unlock (&lock);
  r = syscall (SYS_fdatasync, fd);
  if (r == 0) {
    pthread_mutex_lock (&lock);
    make_durable (upto);
    pthread_mutex_unlock (&lock);
  }
  return r;
}

static int
copy_file (int from, int to)
{
  uint8_t buf[65536];
  uint64_t offset = 0;
  ssize_t r;

  if (ftruncate (to, 0) == -1)
    return -1;
  while ((r = pread (from, buf, sizeof buf, (off_t) offset)) > 0) {
    if (write_all (to, buf, (size_t) r, offset) == -1)
      return -1;
    offset += r;
  }
  return r == 0 ? 0 : -1;
}

int
powercut_start (const char *image, const char *shadow)
{
  char path[64], target[4096];
  int fd, src;

  /* The engine's descriptor of the image: the one open on its path. */
  for (fd = 3; fd < 1024; fd++) {
    ssize_t n;
    snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
    n = readlink (path, target, sizeof target - 1);
    if (n <= 0)
      continue;
    target[n] = '\0';
    if (strcmp (target, image) == 0)
      break;
  }
  if (fd == 1024) {
    errno = ENOENT;
    return -1;
  }
  shadow_fd = open (shadow, O_RDWR | O_CREAT | O_TRUNC, 0644);
  src = open (image, O_RDONLY);
  if (shadow_fd == -1 || src == -1 || copy_file (src, shadow_fd) == -1)
    return -1;
  close (src);
  pthread_mutex_lock (&lock);
  traced_fd = fd;
  pthread_mutex_unlock (&lock);
  return 0;
}

void
powercut_fail_syncs (unsigned every)
{
  pthread_mutex_lock (&lock);
  fail_every = every;
  pthread_mutex_unlock (&lock);
}

void
powercut_hold_sync (uint64_t offset, uint64_t count)
{
  pthread_mutex_lock (&lock);
  gate_offset = offset;
  gate_end = count > UINT64_MAX - offset ? UINT64_MAX : offset + count;
  gate_released = false;
  gate_armed = true;
  pthread_mutex_unlock (&lock);
}

bool
powercut_sync_held (unsigned seconds)
{
  struct timespec deadline;
  bool held;

  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += seconds;
  pthread_mutex_lock (&lock);
  while (!gate_holding &&
         pthread_cond_timedwait (&gate_changed, &lock, &deadline) == 0)
    ;
  held = gate_holding;
  pthread_mutex_unlock (&lock);
  return held;
}

void
powercut_release_sync (void)
{
  pthread_mutex_lock (&lock);
  gate_armed = false;
  gate_released = true;
  pthread_cond_broadcast (&gate_changed);
  pthread_mutex_unlock (&lock);
}

void
powercut_stop (void)
{
  pthread_mutex_lock (&lock);
  traced_fd = -1;
  for (size_t i = 0; i < nr_logged; i++)
    free (log_entries[i].data);
  nr_logged = 0;
  pthread_mutex_unlock (&lock);
  if (shadow_fd != -1)
    close (shadow_fd);
  shadow_fd = -1;
}

int
powercut_image (const char *out, uint64_t *random_state,
                void (*at_cut) (void *), void *opaque)
{
  int fd = open (out, O_RDWR | O_CREAT | O_TRUNC, 0644);
  int r = 0;

  if (fd == -1)
    return -1;
  pthread_mutex_lock (&lock);
  if (copy_file (shadow_fd, fd) == -1)
    r = -1;
  for (size_t i = 0; r == 0 && i < nr_logged; i++) {
    uint64_t x = *random_state;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;   /* xorshift64*: its top */
    *random_state = x;
    if (((x * UINT64_C (0x2545f4914f6cdd1d)) >> 63) &&
        write_all (fd, log_entries[i].data, log_entries[i].len,
                   log_entries[i].offset) == -1)
      r = -1;
  }
  at_cut (opaque);
  pthread_mutex_unlock (&lock);
  if (close (fd) == -1)
    r = -1;
  return r;
}
