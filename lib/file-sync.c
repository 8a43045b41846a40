/* File sync: fdatasync of the image and its data file, the sync epochs
 * and the unsynced mark (struct zq_image).  It sits below the metadata
 * cache and the refcounts, which sync before they write what depends on
 * earlier writes; the flush (flush.c) and the write-pointer writes
 * (zones.c) sync through it too.  Moved out of flush.c so that those
 * lower layers no longer call up into the flush.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <unistd.h>

#include "internal.h"

/* The data file first: its data is durable before any L2 entry that
 * points at it, as with data in the image itself.  Touches no state, so
 * that it can run without meta_lock.
 */
static int
sync_fds (struct zq_image *img)
{
  if (has_data_file (img) && fdatasync (img->data_fd) == -1) {
    zq_error ("%s: fdatasync of the data file %s: %m", img->filename,
              img->data_filename);
    errno = EIO;
    return -1;
  }
  if (fdatasync (img->fd) == -1) {
    zq_error ("%s: fdatasync: %m", img->filename);
    errno = EIO;
    return -1;
  }
  return 0;
}

/* A sync that started as epoch `epoch` has returned: what was written
 * before it started is durable.
 */
static void
sync_done (struct zq_image *img, uint64_t epoch)
{
  if (epoch > img->durable_epoch)
    img->durable_epoch = epoch;
}

/* The unsynced mark is set by image-write.c alone, after each write has
 * returned, and by writers that hold no meta_lock (guest data, the
 * write-pointer table): so it is atomic, and a sync clears it before its
 * fdatasync starts, never after, lest it clear the mark of a write that
 * the fdatasync may not cover.  A write whose mark a sync cleared had
 * returned before that sync started.
 */
void
sync_mark_written (struct zq_image *img)
{
  if (!__atomic_load_n (&img->unsynced_writes, __ATOMIC_SEQ_CST))
    __atomic_store_n (&img->unsynced_writes, true, __ATOMIC_SEQ_CST);
}

/* Clears the mark for a sync about to start; whether it was set. */
static bool
take_unsynced_mark (struct zq_image *img)
{
  return __atomic_exchange_n (&img->unsynced_writes, false,
                              __ATOMIC_SEQ_CST);
}

int
sync_file (struct zq_image *img)
{
  uint64_t epoch = ++img->sync_epoch;
  bool marked = take_unsynced_mark (img);

  if (sync_fds (img) == -1) {
    if (marked)
      sync_mark_written (img);
    return -1;
  }
  /* Started after every write so far, so it covers the syncs without
   * meta_lock still in flight too: durable_epoch passes their epochs.
   */
  sync_done (img, epoch);
  return 0;
}

/* sync_file with meta_lock dropped around the fdatasyncs.  What was
 * written before is not durable until they return (needs_sync stays
 * true: marked_sync_epoch is ahead of durable_epoch), so a writer that
 * depends on it syncs again under the lock.  Several may be in flight
 * at once (a flush, a write-pointer write, the L2 cache making room),
 * each covering its own epoch: the mark a sync took counts as synced
 * once durable_epoch reaches it, whichever sync returns first.
 */
int
sync_file_unlocked (struct zq_image *img)
{
  uint64_t epoch = ++img->sync_epoch;
  bool marked = take_unsynced_mark (img);
  int r;

  if (marked)
    img->marked_sync_epoch = epoch;
  pthread_mutex_unlock (&img->meta_lock);
  r = sync_fds (img);
  pthread_mutex_lock (&img->meta_lock);
  if (r == 0)
    sync_done (img, epoch);
  else if (marked)
    sync_mark_written (img);
  return r;
}

int
sync_file_nolock (struct zq_image *img)
{
  int r;

  /* What the caller wrote set the mark (image-write.c), or a sync that
   * started after it cleared the mark; this sync covers it either way.
   */
  pthread_mutex_lock (&img->meta_lock);
  r = sync_file_unlocked (img);
  pthread_mutex_unlock (&img->meta_lock);
  return r;
}
