/* zq-vm-burst: writes ahead of a zone's write pointer sent before the
 * write at the pointer, all in flight at once (issue 11, point 1).  Runs
 * inside the VM harness's guest on a block device (the kernel's NBD
 * client); it needs only libc there.
 *
 *   zq-vm-burst DEVICE OFFSET COUNT BLOCK-SIZE
 *
 * Writes blocks COUNT-1 down to 1 of the range at OFFSET, each with its
 * own io_submit (so each request reaches the driver at once, in this
 * order), waits 100 ms, then writes block 0, the one at the pointer.
 * Together they cover the range in order, so a zoned server must take
 * them all however many of its threads the first ones hold.  Then reads
 * the range back and compares.  Prints one line per failed write; exits 0
 * if every write succeeded and the data reads back, else 1.
 *
 * Linux native AIO through raw system calls, so that no libaio is needed;
 * with O_DIRECT each io_submit sends its request without the page cache.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/aio_abi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_BLOCKS 1024

/* Block b's bytes: its number and offset, so a misplaced block shows. */
static void
fill (unsigned char *buf, size_t bs, uint64_t offset, unsigned b)
{
  size_t i;

  for (i = 0; i < bs; i += 16)
    snprintf ((char *) buf + i, 16, "%03u@%011" PRIx64, b % 1000,
              (uint64_t) ((offset + i) & 0xffffffffffU));
}

int
main (int argc, char **argv)
{
  static struct iocb cbs[MAX_BLOCKS];
  static struct io_event events[MAX_BLOCKS];
  aio_context_t ctx = 0;
  unsigned char *bufs, *check;
  uint64_t offset;
  unsigned count, b, done = 0, failed = 0;
  size_t bs;
  int fd;

  if (argc != 5) {
    fprintf (stderr, "usage: zq-vm-burst DEVICE OFFSET COUNT BLOCK-SIZE\n");
    return 2;
  }
  offset = strtoull (argv[2], NULL, 0);
  count = (unsigned) strtoul (argv[3], NULL, 0);
  bs = strtoul (argv[4], NULL, 0);
  if (count < 2 || count > MAX_BLOCKS || bs == 0 || bs % 4096 != 0) {
    fprintf (stderr, "zq-vm-burst: COUNT must be 2 to %d and BLOCK-SIZE a "
             "multiple of 4096\n", MAX_BLOCKS);
    return 2;
  }
  fd = open (argv[1], O_RDWR | O_DIRECT);
  if (fd == -1) {
    fprintf (stderr, "zq-vm-burst: %s: %s\n", argv[1], strerror (errno));
    return 1;
  }
  if (posix_memalign ((void **) &bufs, 4096, bs * count) != 0 ||
      posix_memalign ((void **) &check, 4096, bs) != 0 ||
      syscall (SYS_io_setup, count, &ctx) == -1) {
    fprintf (stderr, "zq-vm-burst: setup: %s\n", strerror (errno));
    return 1;
  }

  for (b = count; b-- > 0; ) {
    struct iocb *cb = &cbs[b], *list[1] = { cb };

    if (b == 0) {
      struct timespec pause = { 0, 100 * 1000 * 1000 };
      nanosleep (&pause, NULL);
    }
    fill (bufs + b * bs, bs, offset + b * bs, b);
    memset (cb, 0, sizeof *cb);
    cb->aio_fildes = (uint32_t) fd;
    cb->aio_lio_opcode = IOCB_CMD_PWRITE;
    cb->aio_buf = (uint64_t) (uintptr_t) (bufs + b * bs);
    cb->aio_nbytes = bs;
    cb->aio_offset = (int64_t) (offset + b * bs);
    cb->aio_data = b;
    if (syscall (SYS_io_submit, ctx, 1L, list) != 1) {
      fprintf (stderr, "zq-vm-burst: io_submit of block %u: %s\n", b,
               strerror (errno));
      return 1;
    }
  }

  while (done < count) {
    long n = syscall (SYS_io_getevents, ctx, 1L, (long) (count - done),
                      events, NULL);
    long i;

    if (n <= 0) {
      if (n == -1 && errno == EINTR)
        continue;
      fprintf (stderr, "zq-vm-burst: io_getevents: %s\n", strerror (errno));
      return 1;
    }
    for (i = 0; i < n; i++) {
      if (events[i].res != (int64_t) bs) {
        printf ("block %" PRIu64 ": %s\n", (uint64_t) events[i].data,
                (int64_t) events[i].res < 0
                ? strerror ((int) -(int64_t) events[i].res) : "short write");
        failed++;
      }
    }
    done += (unsigned) n;
  }
  if (failed > 0) {
    printf ("%u of %u writes failed\n", failed, count);
    return 1;
  }

  for (b = 0; b < count; b++) {
    if (pread (fd, check, bs, (off_t) (offset + b * bs)) != (ssize_t) bs ||
        memcmp (check, bufs + b * bs, bs) != 0) {
      printf ("block %u does not read back as written\n", b);
      return 1;
    }
  }
  return 0;
}
