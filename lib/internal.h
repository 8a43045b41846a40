/* The engine's internal state, shared by the files of lib/.
 *
 * Locks, and what each guards:
 *   zones->wp_write_lock  every write of write-pointer entries, from a
 *                         flush taking the pointers to writing them and
 *                         from a reset deciding whether its pointer is
 *                         on disk to making it durable (zones.c), so an
 *                         older pointer never lands after a newer one;
 *   img->ranges           (the range lock) the guest clusters a request
 *                         reads or writes, held across its data I/O;
 *   img->flush_lock       one flush at a time (flush.c);
 *   img->meta_lock        every piece of metadata below: L1 and refcount
 *                         tables, both caches, pending frees, the sync
 *                         epochs (the unsynced mark is atomic: writes
 *                         set it without the lock, file-sync.c); never
 *                         held across guest data I/O;
 *   zones->lock           zone states, write pointers and the requests
 *                         queued and in flight per zone; never held
 *                         across I/O, nor across the wakes of the
 *                         requests it lets proceed (zone_unlock);
 *   refusal_lock          (refusal-log.c) every image's count of logged
 *                         refusals.
 *
 * Order: wp_write_lock -> flush_lock -> meta_lock, and range lock ->
 * meta_lock; wp_write_lock -> zones->lock.  wp_write_lock and flush_lock
 * are never taken under a range lock, nor the range lock under either
 * (a reset persists its pointer, then trims); only refusal_lock is
 * taken under zones->lock, and only the overlap set's lock (overlap.c,
 * a leaf: changes to the set take it, its checks take no lock) under
 * meta_lock; nothing under refusal_lock (a backing file's own locks are
 * taken under this image's range lock only).
 *
 * Syncs: flushes and write-pointer writes fdatasync without meta_lock
 * (sync_file_unlocked, sync_file_nolock), so L2 lookups go on meanwhile;
 * so does map_lock (l2-map.c), which makes room in the L2 cache before
 * a request's mapping.  A dirty L2 table evicted from the cache all the
 * same, a grown refcount table, marking the image corrupt (once,
 * overlap.c) and open/close still sync with meta_lock held.
 */
#ifndef ZQ_INTERNAL_H
#define ZQ_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "zqcow2.h"
#include "header.h"
#include "metacache.h"
#include "overlap.h"
#include "range-lock.h"
#include "zones.h"

/* Where a guest cluster's bytes come from, from its L2 entry. */
enum cluster_type {
  CLUSTER_UNALLOCATED,          /* no host cluster: reads from the backing
                                   file, or as zeroes without one */
  CLUSTER_ZERO_PLAIN,           /* zero flag, no host cluster */
  CLUSTER_ZERO_ALLOC,           /* zero flag, host cluster kept */
  CLUSTER_NORMAL,               /* data at host_offset */
  CLUSTER_COMPRESSED,           /* compressed data (compress.c) */
};

/* A freed host range, applied to the refcounts only once the metadata that
 * stopped referencing it is durable (see flush.c).
 */
struct pending_free {
  uint64_t first_cluster;
  uint64_t nr_clusters;
};

/* refusal-log.c: how many refused requests were logged, and when. */
struct refusal_rate {
  uint64_t second;              /* the monotonic second of `logged` */
  uint32_t logged;              /* logged as errors in that second */
  uint64_t suppressed;          /* logged at debug level since the last
                                   refusal logged as an error */
};

struct zq_image {
  char *filename;
  int fd;
  bool readonly;
  struct qcow2_header header;
  char *description;

  /* Guest data lives in the external data file (incompatible bit 2) when
   * there is one, at host offset == guest offset and not refcounted in
   * the image; otherwise data_fd is fd.  data_file_raw: autoclear bit 1
   * is kept set, so the data file must read as the guest's disk at every
   * moment (zeroes written into it, not only zero flags).
   */
  char *data_filename;          /* NULL without a data file */
  int data_fd;
  bool data_file_raw;

  /* Geometry derived from the header. */
  unsigned cluster_bits;
  uint32_t cluster_size;
  unsigned l2_bits;             /* log2 of L2 entries per table */
  bool extended_l2;             /* incompatible bit 4: subclusters */
  unsigned l2_entry_bytes;      /* 8, or 16 with extended L2 entries */
  unsigned subcluster_bits;     /* log2 of the subcluster size */
  uint64_t virtual_size;

  range_lock_t ranges;          /* guest clusters in use by requests */

  pthread_mutex_t meta_lock;

  /* L1 table, in host byte order, l1_size entries. */
  uint64_t *l1_table;
  uint32_t l1_size;
  uint32_t l1_dirty_first, l1_dirty_end;  /* dirty entry range, empty if = */

  /* Refcount table in host byte order. */
  uint64_t *refcount_table;
  uint64_t refcount_table_entries;
  unsigned refcount_order;      /* log2 of refcount_bits */
  unsigned refblock_bits;       /* log2 of refcounts per block */
  uint64_t refcount_max;

  struct metacache *l2_cache;
  struct metacache *refblock_cache;

  /* Lowest host cluster index that may be free, and one past the highest
   * cluster ever allocated (the file may be shorter: writes in flight).
   */
  uint64_t free_cluster_hint;
  uint64_t alloc_end;

  struct pending_free *pending_frees;
  size_t nr_pending_frees, pending_frees_alloc;
  uint64_t pending_free_clusters;

  /* Writes since the last fdatasync started, so a sync can be skipped
   * when empty: set only by image-write.c, atomic (file-sync.c).
   * marked_sync_epoch: the epoch of the newest sync that cleared the
   * mark; the writes it took over are not durable either (needs_sync)
   * until durable_epoch reaches it (a sync without meta_lock still in
   * flight, or one that failed).
   */
  bool unsynced_writes;
  uint64_t marked_sync_epoch;

  /* For FUA (flush_range): every sync that starts advances sync_epoch;
   * one that succeeds raises durable_epoch to its own epoch.  A write
   * made while sync_epoch was E is durable once durable_epoch > E.
   * l1_written_epoch: E + 1 of the last L1 entry write, 0 if none.
   */
  uint64_t sync_epoch, durable_epoch;
  uint64_t l1_written_epoch;

  /* flush.c: what the flush in progress took at its start (the frees it
   * applies and the L1 entries it writes, as they were then), and the
   * count of flushes started and of the last one that succeeded, so that
   * a flush that waited behind another can skip its work.
   */
  pthread_mutex_t flush_lock;
  struct pending_free *flushing_frees;
  size_t nr_flushing_frees, flushing_frees_alloc;
  uint64_t *l1_flushing;        /* l1_size entries, allocated once */
  uint32_t l1_flushing_first, l1_flushing_end;
  uint64_t flushes_started;     /* atomic: read without flush_lock */
  uint64_t last_flush_done;

  /* qemu treats images whose clusters are allocated but sparse in the file
   * ("preallocation=metadata") specially in block status; see
   * block-status.c.
   */
  bool metadata_preallocated;
  bool metadata_preallocation_checked;
  uint64_t preallocation_scan_steps;    /* atomic; tests read it */

  /* Which host clusters hold metadata (overlap.c), and whether the image
   * was found corrupt: then no more writes reach the file.
   */
  struct overlap_set *overlap;
  bool corrupt;                 /* atomic */

  /* Zones, on images with the zoned format; NULL otherwise. */
  struct zone_set *zones;

  /* Where unallocated clusters read from (backing.c); NULL when they
   * read as zeroes.
   */
  struct zq_backing *backing;

  struct refusal_rate refusals;
};

/* Whether a cluster of this type reads as zeroes without looking at any
 * file: the zero flag, or unallocated on an image without backing file.
 */
static inline bool
cluster_reads_as_zero (const struct zq_image *img, enum cluster_type type)
{
  return type == CLUSTER_ZERO_PLAIN || type == CLUSTER_ZERO_ALLOC ||
         (type == CLUSTER_UNALLOCATED && img->backing == NULL);
}

/* image.c: the images above one being opened, from its backing file
 * upwards to the top, for backing.c to refuse loops and deep chains.
 */
struct open_chain {
  dev_t dev;
  ino_t ino;
  unsigned depth;               /* 0 for the top image */
  const struct open_chain *above;
};
#define ZQ_MAX_BACKING_DEPTH 64

/* zq_open for an image of a chain: `above` is NULL for the top image. */
struct zq_image *image_open (const struct zq_open_options *options,
                             const struct open_chain *above);

/* backing.c */
struct zq_backing;
/* Opens the backing file the options or the header name, if any, and
 * sets img->backing.  `chain` holds img itself and the images above it.
 */
int backing_open (struct zq_image *img,
                  const struct zq_open_options *options,
                  const struct open_chain *chain);
void backing_free (struct zq_backing *backing);
const char *backing_filename (const struct zq_image *img);
const char *backing_format (const struct zq_image *img);
/* Reads [offset, offset + count) of the guest from the backing chain:
 * zeroes past the end of a shorter backing file.
 */
int backing_read (struct zq_image *img, uint8_t *buf, uint64_t count,
                  uint64_t offset);
/* Whether guest `offset` is inside the backing file (so an unallocated
 * cluster there may show backing data rather than zeroes).
 */
bool backing_reaches (const struct zq_image *img, uint64_t offset);
/* Whether guest bytes from `offset` of a cluster of this type read as
 * zeroes: cluster_reads_as_zero, or unallocated past the end of the
 * backing file.
 */
static inline bool
reads_as_zero_at (const struct zq_image *img, enum cluster_type type,
                  uint64_t offset)
{
  return cluster_reads_as_zero (img, type) ||
         (type == CLUSTER_UNALLOCATED && !backing_reaches (img, offset));
}
/* Block status of the backing chain, as qcow2_block_status returns it,
 * depths counted from the backing file (1 = the backing file itself).
 */
int backing_block_status (struct zq_image *img, uint64_t count,
                          uint64_t offset, unsigned split,
                          zq_extent_depth_fn fn, void *opaque);

static inline bool
has_data_file (const struct zq_image *img)
{
  return img->data_filename != NULL;
}

/* "DIR/NAME" for a relative NAME that the header of the image `image`
 * records (a backing file, a data file): qemu's images mean it relative
 * to the image's directory, not the current one.  NULL without memory.
 */
char *name_beside_image (const char *image, const char *name);
/* data-file.c: opens the external data file named by the header
 * extension (relative to the image's directory) or by `override`.
 */
int data_file_open (struct zq_image *img, const char *override);
/* Makes guest [offset, offset + count) read as zeroes in a raw data file. */
int data_file_zero (struct zq_image *img, uint64_t count, uint64_t offset);

/* log.c */
void zq_log (enum zq_log_level level, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));
#define zq_error(...) zq_log (ZQ_LOG_ERROR, __VA_ARGS__)
#define zq_warning(...) zq_log (ZQ_LOG_WARNING, __VA_ARGS__)
#define zq_debug(...) zq_log (ZQ_LOG_DEBUG, __VA_ARGS__)
/* An error about a file: "FILE: message". */
void zq_file_error (const char *filename, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));
/* refusal-log.c: logs the count of refusals zq_log_refusal sent to the
 * debug level and not yet reported (at close).
 */
void refusal_log_flush (struct zq_image *img);
/* The same, then fails with err: "return zq_refuse (...);". */
int zq_refuse (const char *filename, int err, const char *fs, ...)
  __attribute__ ((format (printf, 3, 4)));

/* file-io.c: whole-buffer file I/O that retries short transfers and EINTR.
 * A read past the end of the file fills the rest with zeroes.
 */
int full_pread (int fd, void *buf, size_t count, uint64_t offset);
int full_pwrite (int fd, const void *buf, size_t count, uint64_t offset);

/* header-read.c: reads the first cluster of the file open on fd
 * (file_size bytes) and parses its header into h.  With first_cluster,
 * the cluster is kept there (the caller frees it) for readers that want
 * the raw extensions.  On failure returns -1 with errno set and the
 * sentence to log in why: the refused field and value, or "reading the
 * header: ..." (then *read_error is set: the file could not be read).
 */
int header_read (int fd, uint64_t file_size, struct qcow2_header *h,
                 uint8_t **first_cluster, size_t *first_len, bool *read_error,
                 char *why, size_t why_len);

/* image-write.c: every write to an open image's file or data file goes
 * through one of these.  `kind` says what the write holds; a write to the
 * image file that would overlap other metadata fails with EIO and marks
 * the image corrupt (overlap.h).  Short writes and EINTR are retried.
 */
struct iovec;
/* Whether writes fail because the image was found corrupt (the finding
 * was logged once; callers need not log each failed write).
 */
static inline bool
write_refused (struct zq_image *img)
{
  return __atomic_load_n (&img->corrupt, __ATOMIC_ACQUIRE);
}
int image_pwrite (struct zq_image *img, int fd, enum meta_kind kind,
                  const void *buf, size_t count, uint64_t offset);
int image_pwritev (struct zq_image *img, int fd, enum meta_kind kind,
                   struct iovec *iov, int iovcnt, uint64_t offset);
/* Punches a hole (fallocate, FALLOC_FL_KEEP_SIZE) into a data file: a
 * write too, for the unsynced mark.  -1 with errno from fallocate.
 */
int image_punch_hole (struct zq_image *img, int fd, uint64_t count,
                      uint64_t offset);

/* file-io.c: a cluster-sized buffer of zeroes, shared read-only (2 MiB). */
#define ZQ_ZERO_BYTES (1u << 21)
extern const uint8_t zq_zero_cluster[ZQ_ZERO_BYTES];

static inline uint64_t
offset_into_cluster (const struct zq_image *img, uint64_t offset)
{
  return offset & (img->cluster_size - 1);
}

static inline uint64_t
cluster_floor (const struct zq_image *img, uint64_t offset)
{
  return offset & ~(uint64_t) (img->cluster_size - 1);
}

static inline uint64_t
cluster_ceil (const struct zq_image *img, uint64_t offset)
{
  return cluster_floor (img, offset + img->cluster_size - 1);
}

/* Adds L1 entries [first, end) to the range the next flush writes.
 * meta_lock held.
 */
static inline void
l1_mark_dirty (struct zq_image *img, uint32_t first, uint32_t end)
{
  if (img->l1_dirty_first == img->l1_dirty_end) {
    img->l1_dirty_first = first;
    img->l1_dirty_end = end;
    return;
  }
  if (first < img->l1_dirty_first)
    img->l1_dirty_first = first;
  if (end > img->l1_dirty_end)
    img->l1_dirty_end = end;
}

/* requests.c: checks a request against the image: offset and count within
 * the virtual size.  Logs and sets errno (EINVAL) when not.
 */
int check_request (struct zq_image *img, const char *what,
                   uint64_t count, uint64_t offset);

/* The qcow2 layer's requests: bounds and permissions already checked,
 * zone rules already applied (requests.c).  No FUA: the caller flushes.
 */
int qcow2_read (struct zq_image *img, void *buf, uint64_t count,
                uint64_t offset);
int qcow2_write (struct zq_image *img, const void *buf, uint64_t count,
                 uint64_t offset);
int qcow2_zero (struct zq_image *img, uint64_t count, uint64_t offset,
                unsigned flags);
int qcow2_trim (struct zq_image *img, uint64_t count, uint64_t offset);
/* Extents with flags and depth (zq_block_status_depth), merged where
 * they agree in what `split` names.  Returns 0 when the whole range was
 * reported, 1 when fn asked to stop or the walk ended early (the client
 * asks again for the rest).
 */
int qcow2_block_status (struct zq_image *img, uint64_t count,
                        uint64_t offset, unsigned split,
                        zq_extent_depth_fn fn, void *opaque);
/* A walk that reports extents as qcow2_block_status does:
 * qcow2_block_status itself, or zone_block_status (zone-io.c) on zoned
 * images.
 */
typedef int block_status_fn (struct zq_image *img, uint64_t count,
                             uint64_t offset, unsigned split,
                             zq_extent_depth_fn fn, void *opaque);
/* zq_block_status_depth after its checks: `walk`, merged once more at
 * the end (zones meet only there).  The caller picks the walk, so that
 * this layer does not call up into the zones layer.  0 or -1.
 */
int block_status_walk (struct zq_image *img, block_status_fn *walk,
                       uint64_t count, uint64_t offset, unsigned split,
                       zq_extent_depth_fn fn, void *opaque);

/* io-read.c: fills buf with run->bytes of a mapped run. */
struct map_run;
int read_run (struct zq_image *img, const struct map_run *run, uint8_t *buf,
              uint64_t guest_offset);
/* io-read.c: reads guest bytes inside clusters the caller has
 * range-locked.
 */
int read_locked (struct zq_image *img, uint8_t *buf, uint64_t count,
                 uint64_t offset);

/* io-write.c: writes into clusters already range-locked by the caller. */
int write_locked (struct zq_image *img, const uint8_t *buf, uint64_t count,
                  uint64_t offset);

/* io-write.c: this thread's scratch for copy-on-write, two clusters of
 * the largest size, allocated once per thread; NULL if out of memory.
 * Not for use across a call that may itself write.
 */
uint8_t *cow_buffer (void);

/* Fails with EPERM, logged, on a read-only image. */
int check_writable (struct zq_image *img, const char *what);

/* flush.c: makes every write that completed before the call durable.
 * Takes flush_lock and meta_lock itself: call it holding neither.
 */
int flush_image (struct zq_image *img);
/* FUA of a request on [offset, offset + count) that has completed:
 * flush_image, or only an fdatasync of the data when the metadata that
 * maps the range is already durable.  Takes the locks it needs.
 */
int flush_range (struct zq_image *img, uint64_t count, uint64_t offset);
/* After a zero or trim that succeeded (requests.c, zone-io.c, holding
 * no lock flush_image may not be taken under): a flush when the frees
 * waiting for one add up to 256 MiB.  Its failure is left to the next
 * flush, which retries.
 */
void release_if_many_pending (struct zq_image *img);
/* file-sync.c: fdatasync of the data file and the image, meta_lock
 * held.
 */
int sync_file (struct zq_image *img);
/* The same with meta_lock dropped around the fdatasyncs (flush.c): what
 * was written before is not durable until it returns (needs_sync stays
 * true meanwhile).  meta_lock held on entry and on return.
 */
int sync_file_unlocked (struct zq_image *img);
/* The same for a caller that holds no meta_lock and has written to the
 * image without it (the write-pointer table): meta_lock is taken only
 * to account for the sync, never across it.  What the caller wrote is
 * durable once it returns 0.
 */
int sync_file_nolock (struct zq_image *img);
/* Sets the unsynced mark after a write to the image or data file has
 * returned.  Only image-write.c calls it: every write goes through there.
 * Needs no lock.
 */
void sync_mark_written (struct zq_image *img);

/* Whether written metadata or data may not be durable yet. */
static inline bool
needs_sync (const struct zq_image *img)
{
  return __atomic_load_n (&img->unsynced_writes, __ATOMIC_SEQ_CST) ||
         img->marked_sync_epoch > img->durable_epoch;
}

/* free-queue.c: the release of host clusters once the metadata that
 * dropped them is durable; meta_lock held.
 */
void queue_free (struct zq_image *img, uint64_t host_offset,
                 uint64_t nr_clusters);
/* Queues the release of the host clusters holding the data of the
 * compressed cluster whose L2 entry is `entry`: each loses one reference,
 * as qemu counts them (a host cluster is referenced once by every
 * compressed cluster whose data touches it).
 */
void queue_free_compressed (struct zq_image *img, uint64_t entry);
/* Queues the release of what an L2 entry that stops mapping held: its
 * compressed data, or else its host cluster at `host`.
 */
void queue_free_entry (struct zq_image *img, bool compressed,
                       uint64_t entry, uint64_t host);
/* For a flush: takes the frees queued so far as its own (they trade
 * places with the flushing list, so nothing is allocated), and applies
 * them once the metadata they depend on is durable.
 */
void take_pending_frees (struct zq_image *img);
void apply_flushing_frees (struct zq_image *img);

/* check.c: every host cluster's references, rebuilt from the metadata
 * as zq_check counts them; *references (malloc'd, *nb_clusters entries,
 * one per cluster of the file) is the caller's to free.  Problems other
 * than the refcounts themselves are logged and counted in *result.
 */
int check_rebuild_references (const char *filename,
                              struct zq_check_result *result,
                              uint32_t **references, uint64_t *nb_clusters);

/* repair.c: rebuilds the refcounts of a dirty image and clears the dirty
 * bit (read-write opens, before any write).  meta_lock not needed: the
 * image is not served yet.
 */
int repair_dirty_image (struct zq_image *img);

/* check.c: only the references of the persistent bitmaps (directory,
 * tables, data), counted when autoclear bit 0 vouches for them.
 */
int check_bitmap_references (const char *filename,
                             struct zq_check_result *result,
                             uint32_t **references, uint64_t *nb_clusters);

/* repair.c: around clearing autoclear bit 0 on a read-write open, the
 * bitmaps' clusters are counted (before) and released (after).
 */
int bitmaps_collect (struct zq_image *img, uint32_t **references,
                     uint64_t *nb_clusters);
int bitmaps_release (struct zq_image *img, uint32_t *references,
                     uint64_t nb_clusters);

#endif /* ZQ_INTERNAL_H */
