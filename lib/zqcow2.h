/* zqcow2: the engine's public interface.
 *
 * The engine serves one qcow2 image as a flat array of bytes.  It knows
 * nothing of NBD: the nbdkit plugin and the standalone server translate
 * their requests into these calls.
 *
 * Every function that can fail returns 0 on success, or -1 with errno set
 * to the value a client should see, after logging one sentence that names
 * the image and the problem through the log function (zq_set_log_fn).
 *
 * All I/O functions may be called concurrently from many threads on the
 * same image.
 */
#ifndef ZQCOW2_H
#define ZQCOW2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zq_image;

/* Log levels, most severe first. */
enum zq_log_level {
  ZQ_LOG_ERROR,
  ZQ_LOG_WARNING,
  ZQ_LOG_DEBUG,
};

/* Receives every message of the engine, already formatted, without a
 * trailing newline.  The default writes errors and warnings to stderr.
 */
typedef void (*zq_log_fn) (enum zq_log_level level, const char *message);
void zq_set_log_fn (zq_log_fn fn);

/* Logs why a request was refused, as the engine logs its own refusals:
 * as an error, or at ZQ_LOG_DEBUG beyond a few a second per image, with
 * the number of those logged as an error later.  A front end that sends
 * the reason to the client takes the last message of either level.
 */
void zq_log_refusal (struct zq_image *img, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3)));

struct zq_open_options {
  const char *filename;         /* the qcow2 image */
  /* The external data file, overriding the name in the image; NULL: the
   * image's own (relative to the image's directory).
   */
  const char *data_file;
  bool readonly;                /* never change a byte of any file */
  uint64_t l2_cache_bytes;      /* 0: cover the whole image, up to 32 MiB */
  /* Fault injection on zoned images: lists of zone numbers and ranges
   * ("3,7-9"), or NULL.  Offline zones fail reads and writes with EIO,
   * read-only zones fail writes with EPERM.
   */
  const char *offline_zones;
  const char *readonly_zones;
  /* The backing file.  NULL: the one the image names, a relative name
   * resolved against the image's directory, its format from the backing
   * format extension or else probed (qcow2 magic, else raw).  Otherwise
   * this file instead, format probed.  Backing files are opened
   * read-only, a qcow2 one with its own backing chain (at most 64 deep).
   * no_backing serves the image alone: unallocated clusters read as
   * zeroes.
   */
  const char *backing_file;
  bool no_backing;
  /* Zoned images: a write (or write zeroes) that crosses zone boundaries
   * is accepted when each piece is valid in its own zone (every piece but
   * the last ends at its zone's end, with no byte beyond the capacity;
   * every piece but the first starts at its zone's write pointer), and
   * applied as those pieces.  false: such writes are refused, as ZBC
   * refuses them.  For clients that cannot see the zones.
   */
  bool zone_boundary_split;
};

/* Opens and validates an image.  Returns NULL with errno set on failure. */
struct zq_image *zq_open (const struct zq_open_options *options);

/* Flushes (when writable) and frees everything.  Returns -1 if the final
 * flush failed; the image is freed either way.
 */
int zq_close (struct zq_image *img);

/* What the front ends need to describe the export. */
const char *zq_filename (const struct zq_image *img);
uint64_t zq_virtual_size (const struct zq_image *img);
uint32_t zq_cluster_size (const struct zq_image *img);

/* The request sizes to advertise (NBD_INFO_BLOCK_SIZE, nbdkit's
 * .block_size, a block device's queue limits).  A front end copies
 * these; it may lower maximum (and preferred with it) to what its own
 * buffers take, never raise them.
 */
struct zq_block_limits {
  uint32_t minimum;     /* alignment every request must keep */
  uint32_t preferred;   /* whole clusters: no read-modify-write */
  uint32_t maximum;     /* UINT32_MAX: the engine sets no limit */
};
void zq_block_limits (const struct zq_image *img,
                      struct zq_block_limits *limits);
bool zq_is_readonly (const struct zq_image *img);
int zq_qcow2_version (const struct zq_image *img);
/* The backing file in use, as opened, or NULL. */
const char *zq_backing_filename (const struct zq_image *img);

/* One line describing the image, for NBD_INFO_DESCRIPTION. */
const char *zq_description (const struct zq_image *img);

/* Request flags. */
#define ZQ_FUA        (1u << 0) /* durable before the call returns */
#define ZQ_MAY_TRIM   (1u << 1) /* zero: clusters may be deallocated */
#define ZQ_FAST_ZERO  (1u << 2) /* zero: fail with ENOTSUP rather than
                                   write zeroes to the file */

int zq_pread (struct zq_image *img, void *buf, uint64_t count,
              uint64_t offset);
int zq_pwrite (struct zq_image *img, const void *buf, uint64_t count,
               uint64_t offset, unsigned flags);
int zq_trim (struct zq_image *img, uint64_t count, uint64_t offset,
             unsigned flags);
int zq_zero (struct zq_image *img, uint64_t count, uint64_t offset,
             unsigned flags);
int zq_flush (struct zq_image *img);

/* Parked writes.  A write (or write zeroes) into a sequential zone that
 * arrives ahead of the zone's write pointer waits for the writes before
 * it.  zq_pwrite and zq_zero wait in the calling thread.  A server that
 * reads requests independently of its threads calls the _parked variants
 * instead: a write that must wait returns ZQ_PARKED at once, its record
 * queued on the zone, and the engine calls park->wake once it may be
 * tried again, with the same arguments and record.  The retry may park
 * again.  A parked write that sees no progress in its zone for the wait
 * (five seconds, measured from the later of the last progress in the zone
 * and the write's arrival) is woken by zq_parked_expire, and its retry
 * fails with EIO.
 */
#define ZQ_PARKED 1

struct zq_park {
  /* The caller's.  Called with an engine lock held: it may only hand the
   * request to a thread that retries it, never call the engine.
   */
  void (*wake) (struct zq_park *park);
  /* The engine's: zero before the first call; the engine zeroes them
   * again when a call completes (returns anything but ZQ_PARKED), so a
   * record serves one request after another.
   */
  struct zq_park *next;
  uint64_t offset;              /* where the write waits to start */
  uint64_t since_ns;            /* when it first parked */
  bool expired;                 /* woken by zq_parked_expire */
};

int zq_pwrite_parked (struct zq_image *img, const void *buf, uint64_t count,
                      uint64_t offset, unsigned flags, struct zq_park *park);
int zq_zero_parked (struct zq_image *img, uint64_t count, uint64_t offset,
                    unsigned flags, struct zq_park *park);
/* Wakes the parked writes whose wait is over.  Call it a few times a
 * second while any may be parked.
 */
void zq_parked_expire (struct zq_image *img);
/* How many writes ahead of a write pointer have failed because the
 * writes before them did not come within the wait.
 */
uint64_t zq_zone_wait_timeouts (struct zq_image *img);

/* Block status, as NBD's base:allocation sees it. */
#define ZQ_EXTENT_HOLE (1u << 0)
#define ZQ_EXTENT_ZERO (1u << 1)

/* Called once per extent, in order, with neighbouring extents of the same
 * flags already merged.  Returning -1 stops the walk (zq_block_status then
 * returns 0: the caller asked to stop).
 */
typedef int (*zq_extent_fn) (void *opaque, uint64_t offset, uint64_t length,
                             uint32_t flags);

/* Reports extents covering at least [offset, offset + 1) and at most
 * [offset, offset + count), clipped to the image.
 */
int zq_block_status (struct zq_image *img, uint64_t count, uint64_t offset,
                     zq_extent_fn fn, void *opaque);

/* Block status with the layer of the backing chain that provides each
 * extent, numbered as qemu's qemu:allocation-depth numbers it: 1 the
 * image itself (data, compressed, zero clusters and zero subclusters,
 * whether in the image file or its data file), 2 its backing file, 3 that
 * one's, and so on; 0 when no layer has the bytes (unallocated all the
 * way down, or past a zone's write pointer).  Past the end of a backing
 * file shorter than the image above it the zeroes come from that backing
 * file: its depth.  `split` says where extents end: ZQ_STATUS_FLAGS where
 * the flags change, ZQ_STATUS_DEPTH where the depth does, both for
 * either; what split leaves out is passed as 0.  Otherwise as
 * zq_block_status.
 */
#define ZQ_STATUS_FLAGS (1u << 0)
#define ZQ_STATUS_DEPTH (1u << 1)

typedef int (*zq_extent_depth_fn) (void *opaque, uint64_t offset,
                                   uint64_t length, uint32_t flags,
                                   uint32_t depth);

int zq_block_status_depth (struct zq_image *img, uint64_t count,
                           uint64_t offset, unsigned split,
                           zq_extent_depth_fn fn, void *opaque);

/* Zones.  Types and conditions carry the ZBC/ZNS numbers that Linux's
 * blkzoned.h uses, from the engine to the wire.
 */
enum zq_zone_type {
  ZQ_ZONE_TYPE_CONVENTIONAL = 0x1,
  ZQ_ZONE_TYPE_SEQWRITE_REQ = 0x2,
};

enum zq_zone_cond {
  ZQ_ZONE_COND_NOT_WP = 0x0,
  ZQ_ZONE_COND_EMPTY = 0x1,
  ZQ_ZONE_COND_IMP_OPEN = 0x2,
  ZQ_ZONE_COND_EXP_OPEN = 0x3,
  ZQ_ZONE_COND_CLOSED = 0x4,
  ZQ_ZONE_COND_READONLY = 0xd,
  ZQ_ZONE_COND_FULL = 0xe,
  ZQ_ZONE_COND_OFFLINE = 0xf,
};

/* The zoned extension's geometry (zoned-qcow2-format.md). */
struct zq_zone_geometry {
  uint8_t zone_model;           /* 1 = host-managed */
  uint64_t zone_size;
  uint64_t zone_capacity;
  uint32_t conventional_zones;
  uint32_t nr_zones;
  uint32_t max_active_zones;    /* 0 = no limit */
  uint32_t max_open_zones;      /* 0 = no limit */
  uint32_t max_append_bytes;
  uint64_t zonedmeta_size;
  uint64_t zonedmeta_offset;
  /* log2 (zone_size), filled by zq_zone_geometry: not stored on disk. */
  unsigned zone_shift;
};

/* The logical block size of a zoned image: requests into a sequential
 * zone that are not multiples of it fail with EINVAL.
 */
#define ZQ_ZONED_BLOCK_SIZE 512

struct zq_zone {
  uint64_t start;
  uint64_t length;              /* zone_size, less for a short last zone */
  uint64_t capacity;
  uint64_t write_pointer;       /* start + length when FULL; start for
                                   conventional zones */
  enum zq_zone_type type;
  enum zq_zone_cond cond;
};

bool zq_is_zoned (const struct zq_image *img);

/* A condition as blkzone abbreviates it: "nw", "em", "oi", "oe", "cl",
 * "ro", "fu", "of".
 */
const char *zq_zone_cond_name (enum zq_zone_cond cond);

/* Fails with EINVAL on an image that is not zoned. */
int zq_zone_geometry (const struct zq_image *img,
                      struct zq_zone_geometry *geometry);

/* Fills zones[0 .. count) from zone `first` on; returns how many were
 * filled (fewer at the end of the device), or -1.
 */
int zq_zone_report (struct zq_image *img, uint32_t first, uint32_t count,
                    struct zq_zone *zones);

/* The zone management operations NBD has no command for (the tool uses
 * them on an image not in use).  Each follows the ZBC state machine and
 * is durable when it returns.
 */
int zq_zone_open (struct zq_image *img, uint32_t zone);
int zq_zone_close (struct zq_image *img, uint32_t zone);
int zq_zone_finish (struct zq_image *img, uint32_t zone);
int zq_zone_reset (struct zq_image *img, uint32_t zone);

/* Zone append: writes count bytes (a multiple of 512, at most
 * max_append_bytes) at the write pointer of the sequential zone that
 * starts at zone_start, the offset chosen by the engine among the writes
 * to that zone, and returns it in *appended_at.  Concurrent appends to one
 * zone each get their own range.  Flags: ZQ_FUA.  Errors as zq_pwrite's:
 * EIO when the zone is full or the data does not fit its capacity,
 * ENOSPC at the open or active zone limit, EINVAL when zone_start is not
 * the start of a sequential zone or the length is wrong.
 */
int zq_zone_append (struct zq_image *img, const void *buf, uint64_t count,
                    uint64_t zone_start, unsigned flags,
                    uint64_t *appended_at);

/* Creating images (zqcow2-img create). */
struct zq_create_options {
  const char *filename;
  uint64_t size;
  uint32_t cluster_size;        /* 0: 64 KiB */
  unsigned refcount_bits;       /* 0: 16 */
  bool lazy_refcounts;
  bool compression_zstd;        /* compression_type zstd, else zlib */
  bool zoned;
  uint64_t zone_size;           /* 0: 256 MiB */
  uint64_t zone_capacity;       /* 0: zone_size */
  uint32_t conventional_zones;
  uint32_t max_open_zones;
  uint32_t max_active_zones;    /* 0: none, or with max_open_zones: all */
  uint32_t max_append_bytes;    /* 0: 64 KiB, less for small zones */
  bool allow_short_last_zone;   /* size need not be a multiple of zone_size */
  /* An external data file (incompatible bit 2), named in the header as
   * given: a relative name is relative to the image's directory, where
   * zq_create makes the file (emptied, sized to the disk).  NULL: none.
   */
  const char *data_file;
  /* Autoclear bit 1: the data file stays a raw image of the disk.  Needs
   * data_file.  As qemu-img does, every L2 table is then allocated with
   * each cluster mapped to the same offset in the data file.
   */
  bool data_file_raw;
};

/* Writes a new, empty qcow2 v3 image, replacing an existing file as
 * qemu-img create does.  Every option is checked before any file is
 * touched: an invalid one (or geometry) is refused with the reason
 * logged, errno EINVAL.  The image is written to a temporary file in the
 * same directory and renamed over the target once complete and synced, so
 * the target is never left half-written: it is either unchanged or a
 * whole new image.  A replaced file keeps its permissions, not its owner
 * or hard links; a symbolic link is kept and its target replaced.  A
 * target that exists and is not a regular file is refused.  The size is
 * rounded up to a multiple of 512, as qemu-img does.  The data file, if
 * any, is made (or emptied) after the image is written and before it is
 * renamed into place, and removed again if the image cannot be.
 */
int zq_create (const struct zq_create_options *options);

/* Fills the options left 0 with the values zq_create uses for them: the
 * cluster size, refcount bits, zone size and capacity, the largest
 * max_append_bytes QEMU's zoned series accepts (up to 64 KiB), and, for
 * an open limit given alone, max_active_zones = the sequential zones.
 * zq_create does this itself; callers use it to show what will be made.
 */
void zq_create_defaults (struct zq_create_options *options);

/* Looking at an image offline (zqcow2-img info, check).  Both open the
 * file read-only and never write to it, and work on images the engine
 * would refuse to serve (zstd compression, dirty, marked corrupt).
 */
struct zq_info {
  uint32_t version;             /* 2 or 3 */
  uint64_t virtual_size;
  uint32_t cluster_size;
  unsigned refcount_bits;
  uint8_t compression_type;     /* 0 zlib, 1 zstd */
  bool lazy_refcounts;
  bool dirty;                   /* incompatible bit 0 */
  bool corrupt;                 /* incompatible bit 1 */
  bool data_file;               /* incompatible bit 2 */
  bool extended_l2;             /* incompatible bit 4 */
  uint64_t incompatible_features, compatible_features, autoclear_features;
  uint32_t nr_snapshots;
  uint64_t file_size;           /* apparent size of the file */
  uint64_t disk_size;           /* bytes allocated to it */
  /* The backing file as the header names it, and the backing format
   * extension's value; empty strings when absent.
   */
  char backing_file[1024];
  char backing_format[32];
  /* The data file as extension 0x44415441 names it, empty when absent;
   * whether autoclear bit 1 (data_file_raw) is set with bit 2.
   */
  char data_file_name[1024];
  bool data_file_raw;
  /* Bit 5 with a zoned extension that parses (its geometry may still be
   * invalid: a warning is logged, zq_check tells more).
   */
  bool zoned;
  struct zq_zone_geometry geometry;
};

/* Reads the header.  Fails (logged) only when it cannot be parsed. */
int zq_info (const char *filename, struct zq_info *info);

struct zq_check_result {
  uint64_t corruptions;         /* refcounts below the references, bad
                                   table entries */
  uint64_t leaks;               /* refcounts above the references */
  uint64_t wp_errors;           /* zoned extension, write-pointer entries */
  uint64_t check_errors;        /* parts that could not be read */
  /* Statistics, as qemu-img check prints them. */
  uint64_t total_clusters;      /* guest clusters of the virtual size */
  uint64_t allocated_clusters;
  uint64_t fragmented_clusters;
  uint64_t compressed_clusters;
  uint64_t image_end_offset;
};

/* Rebuilds every host cluster's refcount from the metadata (header, L1
 * and L2 tables, data and compressed clusters, refcount table and blocks,
 * internal snapshots, persistent bitmaps, the write-pointer table) and
 * compares it with the stored refcounts; checks L1/L2 entries and, on a
 * zoned image, the extension's geometry and every write-pointer entry.
 * Each problem is logged at ZQ_LOG_ERROR as one sentence, worded as
 * qemu-img check words it and prefixed with the file name.  Returns 0
 * when the check ran (result says what it found), -1 with errno set when
 * it could not run at all (unreadable file or header, unknown
 * incompatible features, out of memory).
 */
int zq_check (const char *filename, struct zq_check_result *result);

#endif /* ZQCOW2_H */
