/* nbdkit-zqcow2-plugin: serves a qcow2 image over NBD.
 *
 * A thin adapter: every qcow2 rule lives in the engine (lib/zqcow2.h);
 * this file only translates nbdkit's callbacks into engine calls.  The
 * callbacks appear in the order a server and a request meet them: loading
 * and configuration, startup, a client connecting and negotiating, data
 * requests, and unloading.
 *
 * All connections share one engine, opened when the first client
 * connects.  The engine is safe to call from many threads at once and
 * makes a flush or FUA write visible to every connection, so the plugin
 * runs PARALLEL and advertises multi-conn.
 */

#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "zqcow2.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1"
#endif

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/* qcow2 features the engine implements beyond the base format, as a comma
 * list for --dump-plugin.  lazy_refcounts: images with the bit are
 * served, a dirty one is repaired on a read-write open (lib/repair.c);
 * the engine itself keeps refcounts current and never sets the dirty bit.
 * backing: qcow2 and raw backing files, chains of any depth.
 * extended_l2: subclusters, read and written (lib/subcluster.c).
 */
#define BUILT_IN_FEATURES "lazy_refcounts,backing,extended_l2"

/* Configuration, from the command line. */
static char *filename;          /* file=, absolute */
static char *data_file;         /* data-file=, absolute; NULL: the image's */
static uint64_t l2_cache_bytes; /* l2-cache-size=, 0: the engine decides */
static char *offline_zones;     /* offline-zones=LIST, fault injection */
static char *readonly_zones;    /* readonly-zones=LIST, fault injection */
static char *backing_file;      /* backing=FILE, absolute */
static bool no_backing;         /* backing=none */
static bool zone_boundary_split; /* zone-boundary=split */

/* The one engine every connection shares, opened by the first .open.
 * image_lock serialises opening it; once set, image never changes until
 * .unload, so connections use their copy of the pointer without the lock.
 */
static pthread_mutex_t image_lock = PTHREAD_MUTEX_INITIALIZER;
static struct zq_image *image;

/* Routes the engine's messages into nbdkit's log, which goes to stderr
 * or syslog depending on how nbdkit runs.  nbdkit has no warning level,
 * so warnings are errors with a "warning:" prefix.
 */
static void
zqcow2_log (enum zq_log_level level, const char *message)
{
  switch (level) {
  case ZQ_LOG_ERROR:
    nbdkit_error ("%s", message);
    break;
  case ZQ_LOG_WARNING:
    nbdkit_error ("warning: %s", message);
    break;
  case ZQ_LOG_DEBUG:
    nbdkit_debug ("%s", message);
    break;
  }
}

/* Called once when nbdkit loads the plugin, before any configuration. */
static void
zqcow2_load (void)
{
  zq_set_log_fn (zqcow2_log);
}

/* Prints what this build can serve, for nbdkit --dump-plugin. */
static void
zqcow2_dump_plugin (void)
{
  printf ("zqcow2_version=%s\n", PACKAGE_VERSION);
  printf ("zqcow2_qcow2_versions=2,3\n");
  /* The compression types of the clusters it reads; it writes none. */
  printf ("zqcow2_compression=zlib,zstd\n");
  printf ("zqcow2_features=%s\n", BUILT_IN_FEATURES);
  printf ("zqcow2_zoned=host-managed\n");
}

/* One key=value from the command line.  A bare FILE arrives as file=FILE
 * (.magic_config_key).
 */
static int
zqcow2_config (const char *key, const char *value)
{
  if (strcmp (key, "file") == 0) {
    if (filename != NULL) {
      nbdkit_error ("file=%s: only one image can be served (already have "
                    "file=%s)", value, filename);
      return -1;
    }
    /* nbdkit changes directory before serving: keep an absolute path. */
    filename = nbdkit_absolute_path (value);
    if (filename == NULL)
      return -1;
  }
  else if (strcmp (key, "data-file") == 0) {
    free (data_file);
    data_file = nbdkit_absolute_path (value);
    if (data_file == NULL)
      return -1;
  }
  else if (strcmp (key, "l2-cache-size") == 0) {
    int64_t size = nbdkit_parse_size (value);

    if (size == -1)
      return -1;
    l2_cache_bytes = size;
  }
  else if (strcmp (key, "backing") == 0) {
    free (backing_file);
    backing_file = NULL;
    no_backing = strcmp (value, "none") == 0;
    if (!no_backing) {
      /* Absolute, for the same reason as file=.  "./none" names a file
       * called none.
       */
      backing_file = nbdkit_absolute_path (value);
      if (backing_file == NULL)
        return -1;
    }
  }
  else if (strcmp (key, "zone-boundary") == 0) {
    if (strcmp (value, "split") != 0 && strcmp (value, "refuse") != 0) {
      nbdkit_error ("zone-boundary=%s: not refuse or split", value);
      return -1;
    }
    zone_boundary_split = strcmp (value, "split") == 0;
  }
  else if (strcmp (key, "offline-zones") == 0 ||
           strcmp (key, "readonly-zones") == 0) {
    /* The engine parses the list when it opens the image, and names the
     * zone that does not exist.
     */
    char **list = key[0] == 'o' ? &offline_zones : &readonly_zones;
    free (*list);
    *list = strdup (value);
    if (*list == NULL) {
      nbdkit_error ("strdup: %m");
      return -1;
    }
  }
  else {
    nbdkit_error ("unknown parameter '%s' (see nbdkit zqcow2 --help)", key);
    return -1;
  }
  return 0;
}

/* Checks that the command line named an image. */
static int
zqcow2_config_complete (void)
{
  if (filename == NULL) {
    nbdkit_error ("you must give the qcow2 image to serve: "
                  "nbdkit zqcow2 [file=]FILE");
    return -1;
  }
  return 0;
}

#define zqcow2_config_help \
  "[file=]FILE               (required) The qcow2 image to serve.\n" \
  "backing=FILE|none         Use FILE as the backing file instead of the\n" \
  "                          one the image names, or none at all.\n" \
  "data-file=FILE            The image's external data file, instead of\n" \
  "                          the one the image names.\n" \
  "l2-cache-size=SIZE        Memory for cached L2 tables (default: enough\n" \
  "                          for the whole image, up to 32M).\n" \
  "offline-zones=LIST        Zoned images: zones (e.g. 3,7-9) that fail\n" \
  "                          reads and writes, as OFFLINE zones do.\n" \
  "readonly-zones=LIST       Zoned images: zones that fail writes, as\n" \
  "                          READ_ONLY zones do.\n" \
  "zone-boundary=refuse|split  Zoned images: split writes that cross zone\n" \
  "                          boundaries when each piece is valid in its\n" \
  "                          zone (default: refuse them, as ZBC does)."

/* Validates the image before nbdkit starts serving, so a corrupt or
 * unsupported image stops nbdkit at startup with the engine's message
 * rather than failing every client later.  Read-only here: whether
 * clients may write is only known in .open.
 */
static int
zqcow2_get_ready (void)
{
  const struct zq_open_options options = {
    .filename = filename,
    .data_file = data_file,
    .readonly = true,
    .l2_cache_bytes = l2_cache_bytes,
    .offline_zones = offline_zones,
    .readonly_zones = readonly_zones,
    .backing_file = backing_file,
    .no_backing = no_backing,
    .zone_boundary_split = zone_boundary_split,
  };
  struct zq_image *probe;

  probe = zq_open (&options);
  if (probe == NULL)
    return -1;                  /* the engine logged why */
  zq_close (probe);
  return 0;
}

/* A client has connected.  The first connection opens the shared engine,
 * read-only if nbdkit runs with -r; later ones reuse it.  The handle is
 * the engine itself: there is no per-connection state, so no .close.
 */
static void *
zqcow2_open (int readonly)
{
  struct zq_image *img;

  pthread_mutex_lock (&image_lock);
  if (image == NULL) {
    const struct zq_open_options options = {
      .filename = filename,
      .data_file = data_file,
      .readonly = readonly,
      .l2_cache_bytes = l2_cache_bytes,
      .offline_zones = offline_zones,
      .readonly_zones = readonly_zones,
      .backing_file = backing_file,
      .no_backing = no_backing,
      .zone_boundary_split = zone_boundary_split,
    };

    /* On failure the engine has logged the reason (e.g. an image marked
     * corrupt cannot be opened for writing); the next client retries.
     */
    image = zq_open (&options);
  }
  img = image;
  pthread_mutex_unlock (&image_lock);
  return img;
}

/* Size of the virtual disk. */
static int64_t
zqcow2_get_size (void *handle)
{
  struct zq_image *img = handle;

  return zq_virtual_size (img);
}

/* One line for NBD_INFO_DESCRIPTION; the engine keeps the string for as
 * long as it is open.
 */
static const char *
zqcow2_export_description (void *handle)
{
  struct zq_image *img = handle;

  return zq_description (img);
}

/* The engine decides the sizes; nbdkit takes them as they are. */
static int
zqcow2_block_size (void *handle,
                   uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
  struct zq_block_limits limits;

  zq_block_limits (handle, &limits);
  *minimum = limits.minimum;
  *preferred = limits.preferred;
  *maximum = limits.maximum;
  return 0;
}

/* False when the shared engine was opened read-only, even if this
 * connection could write: the first connection decided for all of them.
 * (nbdkit does not ask at all when it runs with -r.)
 */
static int
zqcow2_can_write (void *handle)
{
  struct zq_image *img = handle;

  return !zq_is_readonly (img);
}

/* The remaining capabilities hold for every image the engine opens.
 * nbdkit only asks about trim, zero and FUA on writable connections.
 */
static int
zqcow2_can_flush (void *handle)
{
  return 1;
}

static int
zqcow2_can_trim (void *handle)
{
  return 1;
}

static int
zqcow2_can_zero (void *handle)
{
  return 1;
}

/* The engine fails a fast zero with ENOTSUP up front when it would have
 * to write zeroes to the file.
 */
static int
zqcow2_can_fast_zero (void *handle)
{
  return 1;
}

/* The engine makes a request durable itself when given ZQ_FUA, so
 * nbdkit need not follow each FUA request with a separate .flush.
 */
static int
zqcow2_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

/* One engine serves every connection, so a flush on one covers writes
 * made on all of them.
 */
static int
zqcow2_can_multi_conn (void *handle)
{
  return 1;
}

static int
zqcow2_can_extents (void *handle)
{
  return 1;
}

/* The engine's request flags for nbdkit's. */
static unsigned
engine_flags (uint32_t flags)
{
  unsigned zq_flags = 0;

  if (flags & NBDKIT_FLAG_FUA)
    zq_flags |= ZQ_FUA;
  if (flags & NBDKIT_FLAG_MAY_TRIM)
    zq_flags |= ZQ_MAY_TRIM;
  if (flags & NBDKIT_FLAG_FAST_ZERO)
    zq_flags |= ZQ_FAST_ZERO;
  return zq_flags;
}

/* In the data callbacks below the engine has already logged a failure;
 * they only pass its errno on to the client (nbdkit would otherwise send
 * EIO).
 */

/* NBD_CMD_READ. */
static int
zqcow2_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
              uint32_t flags)
{
  struct zq_image *img = handle;

  if (zq_pread (img, buf, count, offset) == -1) {
    nbdkit_set_error (errno);
    return -1;
  }
  return 0;
}

/* A write ahead of its zone's write pointer waits for the writes before
 * it in the nbdkit thread that received it, and nbdkit reads no further
 * request of a connection while all its threads are busy: with fewer
 * threads than the client keeps writes in flight, the write at the
 * pointer may never be read, and the waiting writes time out.  nbdkit's
 * plugin API has no way to answer a request later from another thread,
 * so the fix is the thread count, and the plugin says so, once.
 */
static atomic_bool starved_warned;

static void
warn_if_starved (struct zq_image *img)
{
  if (zq_zone_wait_timeouts (img) > 0 &&
      !atomic_exchange (&starved_warned, true))
    nbdkit_error ("warning: a write ahead of a zone's write pointer timed "
                  "out waiting for the writes before it, probably because "
                  "every nbdkit thread of the connection held such a "
                  "write.  Run nbdkit with -t N, N at least the number of "
                  "requests the client keeps in flight per connection "
                  "(128 for the Linux kernel's client), or lower "
                  "/sys/block/nbdX/queue/nr_requests in the client");
}

/* NBD_CMD_WRITE, with FUA. */
static int
zqcow2_pwrite (void *handle, const void *buf, uint32_t count,
               uint64_t offset, uint32_t flags)
{
  struct zq_image *img = handle;
  int err;

  if (zq_pwrite (img, buf, count, offset, engine_flags (flags)) == -1) {
    err = errno;
    warn_if_starved (img);
    nbdkit_set_error (err);
    return -1;
  }
  return 0;
}

/* NBD_CMD_WRITE_ZEROES, with FUA, MAY_TRIM (unless the client sent
 * NO_HOLE) and FAST_ZERO.  A plain zero that fails with ENOTSUP makes
 * nbdkit fall back to writing zeroes with .pwrite.
 */
static int
zqcow2_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct zq_image *img = handle;

  int err;

  if (zq_zero (img, count, offset, engine_flags (flags)) == -1) {
    err = errno;
    warn_if_starved (img);
    nbdkit_set_error (err);
    return -1;
  }
  return 0;
}

/* NBD_CMD_TRIM, with FUA.  Trimmed ranges read back as zeroes. */
static int
zqcow2_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct zq_image *img = handle;

  if (zq_trim (img, count, offset, engine_flags (flags)) == -1) {
    nbdkit_set_error (errno);
    return -1;
  }
  return 0;
}

/* NBD_CMD_FLUSH: data, then qcow2 metadata, then the file's own flush. */
static int
zqcow2_flush (void *handle, uint32_t flags)
{
  struct zq_image *img = handle;

  if (zq_flush (img) == -1) {
    nbdkit_set_error (errno);
    return -1;
  }
  return 0;
}

/* State of one NBD_CMD_BLOCK_STATUS walk through the engine. */
struct extents_walk {
  struct nbdkit_extents *extents;
  bool req_one;                 /* the client wants only the first extent */
  bool failed;                  /* nbdkit_add_extent failed */
  int error;                    /* ... with this errno */
};

/* Passes one engine extent on to nbdkit.  Returning -1 stops the walk,
 * which the engine reports as success, so a real failure is remembered
 * in the walk.
 */
static int
add_extent (void *opaque, uint64_t offset, uint64_t length, uint32_t flags)
{
  struct extents_walk *walk = opaque;
  uint32_t type = 0;

  if (flags & ZQ_EXTENT_HOLE)
    type |= NBDKIT_EXTENT_HOLE;
  if (flags & ZQ_EXTENT_ZERO)
    type |= NBDKIT_EXTENT_ZERO;

  if (nbdkit_add_extent (walk->extents, offset, length, type) == -1) {
    walk->failed = true;
    walk->error = errno;
    return -1;
  }
  return walk->req_one ? -1 : 0;
}

/* NBD_CMD_BLOCK_STATUS for base:allocation: which ranges are holes and
 * which read as zeroes, from the qcow2 mapping.
 */
static int
zqcow2_extents (void *handle, uint32_t count, uint64_t offset,
                uint32_t flags, struct nbdkit_extents *extents)
{
  struct zq_image *img = handle;
  struct extents_walk walk = {
    .extents = extents,
    .req_one = (flags & NBDKIT_FLAG_REQ_ONE) != 0,
  };

  if (zq_block_status (img, count, offset, add_extent, &walk) == -1) {
    nbdkit_set_error (errno);
    return -1;
  }
  if (walk.failed) {
    nbdkit_set_error (walk.error);
    return -1;
  }
  return 0;
}

/* Called once when nbdkit exits: closing the engine flushes what it still
 * holds.  nbdkit may be killed before this runs, so durability rests on
 * the clients' flushes, never on this.
 */
static void
zqcow2_unload (void)
{
  if (image != NULL && zq_close (image) == -1)
    nbdkit_error ("%s: the final flush failed; writes not flushed by the "
                  "client may be lost", filename);
  image = NULL;
  free (filename);
  free (data_file);
  data_file = NULL;
  free (offline_zones);
  free (readonly_zones);
  free (backing_file);
  filename = offline_zones = readonly_zones = backing_file = NULL;
}

static struct nbdkit_plugin plugin = {
  .name               = "zqcow2",
  .longname           = "nbdkit zqcow2 plugin",
  .version            = PACKAGE_VERSION,
  .description        = "Serve a qcow2 image over NBD.",
  .load               = zqcow2_load,
  .dump_plugin        = zqcow2_dump_plugin,
  .config             = zqcow2_config,
  .config_complete    = zqcow2_config_complete,
  .config_help        = zqcow2_config_help,
  .magic_config_key   = "file",
  .get_ready          = zqcow2_get_ready,
  .open               = zqcow2_open,
  .get_size           = zqcow2_get_size,
  .export_description = zqcow2_export_description,
  .block_size         = zqcow2_block_size,
  .can_write          = zqcow2_can_write,
  .can_flush          = zqcow2_can_flush,
  .can_trim           = zqcow2_can_trim,
  .can_zero           = zqcow2_can_zero,
  .can_fast_zero      = zqcow2_can_fast_zero,
  .can_fua            = zqcow2_can_fua,
  .can_multi_conn     = zqcow2_can_multi_conn,
  .can_extents        = zqcow2_can_extents,
  .pread              = zqcow2_pread,
  .pwrite             = zqcow2_pwrite,
  .zero               = zqcow2_zero,
  .trim               = zqcow2_trim,
  .flush              = zqcow2_flush,
  .extents            = zqcow2_extents,
  .unload             = zqcow2_unload,
};

NBDKIT_REGISTER_PLUGIN (plugin)
