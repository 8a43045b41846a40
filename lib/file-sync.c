/* File sync: fdatasync of the image and its data file, the sync epochs
 * and the unsynced mark (struct zq_image).  It sits below the metadata
 * cache and the refcounts, which sync before they write what depends on
 * earlier writes; the flush (flush.c) and the write-pointer writes
 * (zones.c) sync through it too.  Moved out of flush.c so that those
 * lower layers no longer call up into the flush.
 */
#include <config.h>

#include <errno.h>
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

int
sync_file (struct zq_image *img)
{
  uint64_t epoch = ++img->sync_epoch;

  if (sync_fds (img) == -1)
    return -1;
  sync_done (img, epoch);
  /* Started after every write so far, so it covers an unlocked sync
   * still in flight too.
   */
  img->unsynced_writes = false;
  img->sync_in_flight = false;
  return 0;
}

/* sync_file with meta_lock dropped around the fdatasyncs.  What was
 * written before is not durable until they return (needs_sync stays
 * true), so a writer that depends on it syncs again under the lock.
 */
int
sync_file_unlocked (struct zq_image *img)
{
  uint64_t epoch = ++img->sync_epoch;
  int r;

  if (img->unsynced_writes)
    img->sync_in_flight = true;
  img->unsynced_writes = false;
  pthread_mutex_unlock (&img->meta_lock);
  r = sync_fds (img);
  pthread_mutex_lock (&img->meta_lock);
  if (r == 0)
    sync_done (img, epoch);
  else if (img->sync_in_flight)
    img->unsynced_writes = true;
  img->sync_in_flight = false;
  return r;
}

int
sync_file_nolock (struct zq_image *img)
{
  int r;

  pthread_mutex_lock (&img->meta_lock);
  img->unsynced_writes = true;
  r = sync_file_unlocked (img);
  pthread_mutex_unlock (&img->meta_lock);
  return r;
}
