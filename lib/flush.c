/* Making writes durable, in the order that keeps the image consistent at
 * every point:
 *
 *   1. refcount blocks (new references are counted before they exist);
 *   2. sync: guest data and refcounts are durable;
 *   3. L2 tables (they may now point at that data);
 *   4. sync, then the L1 entries of new L2 tables; sync;
 *   5. only now release the clusters whose references were dropped, so a
 *      cluster is never reused while a durable table still points at it,
 *      and write their refcounts at once (unsynced: a crash before the
 *      next sync leaks them at worst) so that few leak when the process
 *      is killed.
 *
 * The syncs run without meta_lock, so requests go on while the disk
 * works: a flush covers what it took at its start (copies of the dirty
 * L2 tables, the dirty L1 entries, the pending frees) and leaves what
 * changes meanwhile to the next flush; see flush_steps.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "be.h"
#include "internal.h"
#include "qcow2-format.h"
#include "refcount.h"

/* The dirty L1 entries as they are now: an entry changed later may point
 * at an L2 table this flush does not make durable.
 */
static int
take_l1_entries (struct zq_image *img)
{
  uint32_t first = img->l1_dirty_first, end = img->l1_dirty_end;

  if (first == end)
    return 0;
  if (img->l1_flushing == NULL) {
    img->l1_flushing = malloc ((size_t) img->l1_size * sizeof (uint64_t));
    if (img->l1_flushing == NULL)
      return -1;
  }
  memcpy (img->l1_flushing + first, img->l1_table + first,
          (size_t) (end - first) * sizeof (uint64_t));
  img->l1_flushing_first = first;
  img->l1_flushing_end = end;
  img->l1_dirty_first = img->l1_dirty_end = 0;
  return 0;
}

static int
write_l1_entries (struct zq_image *img)
{
  uint32_t first = img->l1_flushing_first, end = img->l1_flushing_end, i;
  uint8_t entry[8];

  /* Entries are written one by one, each an atomic 8-byte write, so a
   * crash leaves every entry either old or new.  Only flushes write L1
   * entries, one at a time, so none newer is on disk.
   */
  for (i = first; i < end; i++) {
    store_be64 (entry, img->l1_flushing[i]);
    if (image_pwrite (img, img->fd, META_L1, entry, 8,
                      img->header.l1_table_offset + (uint64_t) i * 8) == -1) {
      if (!write_refused (img))
        zq_error ("%s: writing L1 entry %" PRIu32 ": %m", img->filename, i);
      errno = EIO;
      return -1;
    }
  }
  img->l1_written_epoch = img->sync_epoch + 1;
  img->l1_flushing_first = img->l1_flushing_end = 0;
  return 0;
}

/* After a failed flush, what it took goes back for the next one: the
 * frees it did not apply and the L1 entries it did not write (the next
 * flush writes their current values).
 */
static void
abandon_flush (struct zq_image *img)
{
  uint32_t first = img->l1_flushing_first, end = img->l1_flushing_end;
  size_t i;

  metacache_drop_snapshot (img->l2_cache);
  for (i = 0; i < img->nr_flushing_frees; i++)
    queue_free (img, img->flushing_frees[i].first_cluster << img->cluster_bits,
                img->flushing_frees[i].nr_clusters);
  img->nr_flushing_frees = 0;
  if (first != end) {
    l1_mark_dirty (img, first, end);
    img->l1_flushing_first = img->l1_flushing_end = 0;
  }
}

/* Copies of dirty L2 tables a flush may hold so that it can sync without
 * meta_lock; with more dirty tables than this, it keeps the lock.
 */
#define SNAPSHOT_MAX_BYTES (8u << 20)

/* What the flush covers, taken at its start (step 1).  *unlocked says
 * whether every dirty L2 table could be copied, so that the syncs may
 * run without meta_lock: the copies are what the tables were when the
 * refcount blocks they depend on were written.
 */
static int
start_flush (struct zq_image *img, bool *unlocked)
{
  take_pending_frees (img);
  if (take_l1_entries (img) == -1 ||
      metacache_writeback (img->refblock_cache) == -1)
    return -1;
  *unlocked = metacache_snapshot (img->l2_cache, SNAPSHOT_MAX_BYTES) == 0;
  return 0;
}

static int
flush_sync (struct zq_image *img, bool unlocked)
{
  return unlocked ? sync_file_unlocked (img) : sync_file (img);
}

/* Steps 1 to 5 of the comment at the top, meta_lock held (dropped around
 * the syncs when unlocked).  While it is dropped, other requests may
 * dirty, evict and write tables and queue frees: the flush writes only
 * the copies it took (metacache_write_snapshot), the L1 entries and the
 * frees it took, so nothing newer than its start reaches the disk
 * through it before what that depends on.
 */
static int
flush_steps (struct zq_image *img)
{
  bool unlocked;

  if (start_flush (img, &unlocked) == -1 ||
      flush_sync (img, unlocked) == -1)
    return -1;
  if ((unlocked ? metacache_write_snapshot (img->l2_cache)
                : metacache_writeback (img->l2_cache)) == -1)
    return -1;
  if (img->l1_flushing_first != img->l1_flushing_end) {
    if (needs_sync (img) && flush_sync (img, unlocked) == -1)
      return -1;
    if (write_l1_entries (img) == -1)
      return -1;
  }
  if (needs_sync (img) && flush_sync (img, unlocked) == -1)
    return -1;
  if (img->nr_flushing_frees > 0) {
    apply_flushing_frees (img);
    if (metacache_writeback (img->refblock_cache) == -1)
      return -1;
  }
  return 0;
}

int
flush_image (struct zq_image *img)
{
  uint64_t arrived_after, number;
  int r;

  if (img->readonly)
    return 0;
  arrived_after = __atomic_load_n (&img->flushes_started, __ATOMIC_SEQ_CST);
  pthread_mutex_lock (&img->flush_lock);
  /* A flush that started after this one arrived, and succeeded, covered
   * every write that had completed by then.
   */
  if (img->last_flush_done > arrived_after) {
    pthread_mutex_unlock (&img->flush_lock);
    return 0;
  }
  pthread_mutex_lock (&img->meta_lock);
  number = img->flushes_started + 1;
  __atomic_store_n (&img->flushes_started, number, __ATOMIC_SEQ_CST);
  r = flush_steps (img);
  if (r == -1) {
    int saved_errno = errno;
    abandon_flush (img);
    errno = saved_errno;
  }
  else
    img->last_flush_done = number;
  pthread_mutex_unlock (&img->meta_lock);
  pthread_mutex_unlock (&img->flush_lock);
  return r;
}

static bool
in_range (uint64_t i, uint32_t first, uint32_t end)
{
  return i >= first && i < end;
}

/* Whether the L1 entries and L2 tables that map guest [offset, offset +
 * count) are durable and the same on disk as in memory.  Then a request
 * on the range that has completed needs only the data synced: a crash
 * leaves the range mapped as it is now (and the refcounts of the
 * clusters it points at were durable before those tables were written),
 * and the data those clusters hold now, the request's or a later one's,
 * was written before this check, so before the fdatasync that follows.
 * A table dirty for any entry, of the range or not, makes the answer no:
 * cheap, and errs on the safe side.  meta_lock held.
 */
static bool
range_metadata_durable (struct zq_image *img, uint64_t count,
                        uint64_t offset)
{
  unsigned shift = img->l2_bits + img->cluster_bits;
  uint64_t i;

  if (img->l1_written_epoch > img->durable_epoch)
    return false;
  for (i = offset >> shift; i <= (offset + count - 1) >> shift; i++) {
    uint64_t l2_offset;

    if (i >= img->l1_size ||
        in_range (i, img->l1_dirty_first, img->l1_dirty_end) ||
        in_range (i, img->l1_flushing_first, img->l1_flushing_end))
      return false;
    l2_offset = img->l1_table[i] & QCOW2_L1E_OFFSET_MASK;
    if (l2_offset != 0 &&
        !metacache_table_durable (img->l2_cache, l2_offset))
      return false;
  }
  return true;
}

int
flush_range (struct zq_image *img, uint64_t count, uint64_t offset)
{
  bool durable;

  if (img->readonly)
    return 0;
  pthread_mutex_lock (&img->meta_lock);
  durable = count > 0 && range_metadata_durable (img, count, offset);
  pthread_mutex_unlock (&img->meta_lock);
  if (!durable)
    return flush_image (img);
  if (fdatasync (img->data_fd) == -1) {
    zq_error ("%s: fdatasync of %s: %m", img->filename,
              has_data_file (img) ? img->data_filename : "the image");
    errno = EIO;
    return -1;
  }
  return 0;
}

/* Release freed clusters once this many wait for a flush, so that a
 * client that trims without flushing does not grow the file forever.
 */
#define PENDING_FREE_FLUSH_BYTES (UINT64_C (256) << 20)

void
release_if_many_pending (struct zq_image *img)
{
  bool many;

  pthread_mutex_lock (&img->meta_lock);
  many = (img->pending_free_clusters << img->cluster_bits) >=
         PENDING_FREE_FLUSH_BYTES;
  pthread_mutex_unlock (&img->meta_lock);
  if (many)
    flush_image (img);          /* on failure, the next flush retries */
}
