/* Zones at run time; see zones.h.  The write rules for requests live in
 * zone-io.c; this file keeps the state machine, the limits, the
 * write-pointer table and the management operations.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "be.h"
#include "internal.h"
#include "zoned-format.h"
#include "zones.h"
#include "zones-internal.h"

const char *
zq_zone_cond_name (enum zq_zone_cond cond)
{
  switch (cond) {
  case ZQ_ZONE_COND_NOT_WP: return "nw";
  case ZQ_ZONE_COND_EMPTY: return "em";
  case ZQ_ZONE_COND_IMP_OPEN: return "oi";
  case ZQ_ZONE_COND_EXP_OPEN: return "oe";
  case ZQ_ZONE_COND_CLOSED: return "cl";
  case ZQ_ZONE_COND_READONLY: return "ro";
  case ZQ_ZONE_COND_FULL: return "fu";
  case ZQ_ZONE_COND_OFFLINE: return "of";
  }
  return "?";
}

static bool
cond_is_open (enum zq_zone_cond cond)
{
  return cond == ZQ_ZONE_COND_IMP_OPEN || cond == ZQ_ZONE_COND_EXP_OPEN;
}

static bool
cond_is_active (enum zq_zone_cond cond)
{
  return cond_is_open (cond) || cond == ZQ_ZONE_COND_CLOSED;
}

enum zq_zone_cond
zone_reported_cond (const struct zone *z)
{
  if (z->offline)
    return ZQ_ZONE_COND_OFFLINE;
  if (z->readonly)
    return ZQ_ZONE_COND_READONLY;
  return z->cond;
}

void
zone_set_cond (struct zone_set *zs, struct zone *z, enum zq_zone_cond cond)
{
  if (cond_is_open (z->cond))
    zs->nr_open--;
  if (cond_is_active (z->cond))
    zs->nr_active--;
  z->cond = cond;
  if (cond_is_open (cond))
    zs->nr_open++;
  if (cond_is_active (cond))
    zs->nr_active++;
}

/* The condition a sequential zone has when nothing holds it open.  The
 * writes in flight count as written: they make the zone closed, not
 * empty (and retire_writes makes it empty again if they all fail).
 */
static enum zq_zone_cond
resting_cond (const struct zone *z)
{
  if (z->wp_admitted == z->start)
    return ZQ_ZONE_COND_EMPTY;
  if (z->wp >= z->start + z->capacity)
    return ZQ_ZONE_COND_FULL;
  return ZQ_ZONE_COND_CLOSED;
}

int
zone_open_locked (struct zone_set *zs, struct zone *z,
                  enum zq_zone_cond to, char *why, size_t why_len)
{
  const struct zq_zone_geometry *g = &zs->geometry;

  if (cond_is_open (z->cond)) {
    if (to == ZQ_ZONE_COND_EXP_OPEN)
      zone_set_cond (zs, z, to);
    return 0;
  }
  if (z->cond == ZQ_ZONE_COND_EMPTY && g->max_active_zones &&
      zs->nr_active >= g->max_active_zones) {
    snprintf (why, why_len, "the active zone limit (max_active_zones %"
              PRIu32 ") is reached", g->max_active_zones);
    return ENOSPC;
  }
  if (g->max_open_zones && zs->nr_open >= g->max_open_zones) {
    struct zone *victim = NULL;
    uint32_t i;

    for (i = 0; i < zs->nr_zones; i++) {
      struct zone *c = &zs->zones[i];
      /* A zone with writes in flight may be closed: they go on, and
       * the next write accepted there opens it again.  Excluding such
       * zones would make the limit fail writes whenever every open zone
       * has a write in flight, which with pipelined writes is most of
       * the time.
       */
      if (c->cond == ZQ_ZONE_COND_IMP_OPEN &&
          (victim == NULL || c->last_used < victim->last_used))
        victim = c;
    }
    if (victim == NULL) {
      snprintf (why, why_len, "the open zone limit (max_open_zones %" PRIu32
                ") is reached and no implicitly open zone can be closed",
                g->max_open_zones);
      return ENOSPC;
    }
    zone_set_cond (zs, victim, resting_cond (victim));
  }
  zone_set_cond (zs, z, to);
  return 0;
}

/* Parses "3,7-9" into the zones' offline or readonly flags. */
static int
parse_zone_list (struct zq_image *img, const char *what, const char *list,
                 bool offline)
{
  struct zone_set *zs = img->zones;
  const char *p = list;

  while (*p) {
    char *end;
    unsigned long first, last;

    errno = 0;
    first = strtoul (p, &end, 10);
    if (end == p || errno || *p == '-' || *p == '+')
      goto bad;
    last = first;
    if (*end == '-') {
      p = end + 1;
      last = strtoul (p, &end, 10);
      if (end == p || errno || *p == '-' || *p == '+' || last < first)
        goto bad;
    }
    if (last >= zs->nr_zones) {
      zq_error ("%s: %s=%s: zone %lu does not exist (the image has %" PRIu32
                " zones)", img->filename, what, list, last, zs->nr_zones);
      errno = EINVAL;
      return -1;
    }
    for (unsigned long i = first; i <= last; i++) {
      if (offline)
        zs->zones[i].offline = true;
      else
        zs->zones[i].readonly = true;
    }
    if (*end == ',')
      end++;
    else if (*end != '\0')
      goto bad;
    p = end;
  }
  return 0;

 bad:
  zq_error ("%s: %s=%s: expected zone numbers and ranges like 3,7-9",
            img->filename, what, list);
  errno = EINVAL;
  return -1;
}

/* Decodes every entry in one byte order; returns how many were valid and
 * the first reason one was not.
 */
static uint32_t
decode_table (struct zq_image *img, const uint8_t *raw, bool little_endian,
              char *why, size_t why_len)
{
  struct zone_set *zs = img->zones;
  uint32_t i, valid = 0;
  char reason[256];

  why[0] = '\0';
  for (i = 0; i < zs->nr_zones; i++) {
    struct zone *z = &zs->zones[i];
    uint64_t entry = load_be64 (raw + i * 8);

    if (little_endian)
      entry = __builtin_bswap64 (entry);
    if (wp_entry_decode (&zs->geometry, img->virtual_size, i, entry,
                         &z->wp, &z->cond, reason, sizeof reason)) {
      valid++;
      continue;
    }
    z->wp = z->start;
    z->cond = ZQ_ZONE_COND_OFFLINE;
    if (why[0] == '\0')
      snprintf (why, why_len, "%s", reason);
  }
  return valid;
}

static int
read_wp_table (struct zq_image *img)
{
  struct zone_set *zs = img->zones;
  size_t bytes = (size_t) zs->nr_zones * 8;
  uint8_t *raw = malloc (bytes);
  struct wp_order_vote vote = { 0 };
  char why[256];
  uint32_t valid, i;

  if (raw == NULL)
    return -1;
  if (full_pread (img->fd, raw, bytes, zs->geometry.zonedmeta_offset) == -1) {
    zq_error ("%s: reading the write-pointer table: %m", img->filename);
    free (raw);
    errno = EIO;
    return -1;
  }
  for (i = 0; i < zs->nr_zones; i++)
    wp_order_vote (&vote, &zs->geometry, img->virtual_size, i,
                   load_be64 (raw + (size_t) i * 8));
  if (wp_order_is_little_endian (&vote)) {
    zq_warning ("%s: the write-pointer table is in little-endian byte "
                "order (as QEMU's zoned series writes it on x86); reading "
                "it as such, and rewriting it big-endian on the first write",
                img->filename);
    zs->little_endian = true;
  }
  valid = decode_table (img, raw, zs->little_endian, why, sizeof why);
  if (valid < zs->nr_zones) {
    if (!img->readonly) {
      zq_error ("%s: corrupt write-pointer table: %s; refusing to open "
                "the image for writing (read-only, the zone is reported "
                "offline)", img->filename, why);
      free (raw);
      errno = EINVAL;
      return -1;
    }
    zq_warning ("%s: corrupt write-pointer table: %s; such zones are "
                "reported offline", img->filename, why);
    for (i = 0; i < zs->nr_zones; i++)
      if (zs->zones[i].cond == ZQ_ZONE_COND_OFFLINE) {
        zs->zones[i].cond = ZQ_ZONE_COND_EMPTY;
        zs->zones[i].offline = true;
      }
  }
  free (raw);

  for (i = 0; i < zs->nr_zones; i++) {
    struct zone *z = &zs->zones[i];
    z->wp_on_disk = z->wp_admitted = z->wp;
    store_be64 (zs->wp_table + i * 8,
                wp_entry_encode (&zs->geometry, i, z->wp));
    if (cond_is_active (z->cond))
      zs->nr_active++;
  }
  return 0;
}

int
zones_open (struct zq_image *img, uint64_t file_size,
            const char *offline_zones, const char *readonly_zones)
{
  const struct qcow2_header *h = &img->header;
  struct zone_set *zs;
  char why[512], notes[ZONE_QEMU_NOTES_MAX][ZONE_QEMU_NOTE_LEN];
  uint32_t i, n;

  if (!h->has_zoned) {
    zq_error ("%s: incompatible bit 5 (zoned format) is set but the zoned "
              "header extension is missing (corrupt image)", img->filename);
    errno = EINVAL;
    return -1;
  }
  if (h->version < 3) {
    zq_error ("%s: the zoned format needs a version 3 image, this one is "
              "version %" PRIu32, img->filename, h->version);
    errno = EINVAL;
    return -1;
  }

  zs = calloc (1, sizeof *zs);
  if (zs == NULL)
    return -1;
  img->zones = zs;
  pthread_mutex_init (&zs->lock, NULL);
  pthread_mutex_init (&zs->wp_write_lock, NULL);

  if (zoned_ext_parse (h->zoned_payload, h->zoned_payload_len,
                       &zs->geometry, why, sizeof why) == -1 ||
      zone_geometry_check (&zs->geometry, img->virtual_size,
                           img->cluster_size, true, why, sizeof why) == -1) {
    zq_error ("%s: invalid zoned extension: %s", img->filename, why);
    errno = EINVAL;
    return -1;
  }
  n = zone_geometry_qemu_notes (&zs->geometry, notes);
  for (i = 0; i < n; i++)
    zq_warning ("%s: %s", img->filename, notes[i]);
  if (zs->geometry.zonedmeta_offset > file_size ||
      (uint64_t) zs->geometry.nr_zones * 8 >
      file_size - zs->geometry.zonedmeta_offset) {
    zq_error ("%s: the write-pointer table at 0x%" PRIx64 " lies beyond the "
              "end of the file (%" PRIu64 " bytes)", img->filename,
              zs->geometry.zonedmeta_offset, file_size);
    errno = EINVAL;
    return -1;
  }

  zs->nr_zones = zs->geometry.nr_zones;
  zs->zones = calloc (zs->nr_zones, sizeof *zs->zones);
  zs->wp_table = malloc ((size_t) zs->nr_zones * 8);
  if (zs->zones == NULL || zs->wp_table == NULL)
    return -1;
  for (i = 0; i < zs->nr_zones; i++) {
    struct zone *z = &zs->zones[i];
    zone_bounds (&zs->geometry, img->virtual_size, i,
                 &z->start, &z->length, &z->capacity);
    z->conventional = i < zs->geometry.conventional_zones;
  }
  if (read_wp_table (img) == -1)
    return -1;

  if ((offline_zones &&
       parse_zone_list (img, "offline-zones", offline_zones, true) == -1) ||
      (readonly_zones &&
       parse_zone_list (img, "readonly-zones", readonly_zones, false) == -1))
    return -1;
  return 0;
}

void
zones_free (struct zone_set *zs)
{
  if (zs == NULL)
    return;
  pthread_mutex_destroy (&zs->lock);
  pthread_mutex_destroy (&zs->wp_write_lock);
  free (zs->zones);
  free (zs->wp_table);
  free (zs);
}

/* Writes entries [first, end) of the encoded table (all of them while the
 * file still has the old byte order) and syncs.  wp_write_lock held.
 */
static int
write_wp_entries (struct zq_image *img, uint32_t first, uint32_t end)
{
  struct zone_set *zs = img->zones;
  int r;

  if (zs->little_endian) {
    first = 0;
    end = zs->nr_zones;
  }
  if (image_pwrite (img, img->fd, META_WP_TABLE,
                    zs->wp_table + (size_t) first * 8,
                    (size_t) (end - first) * 8,
                    zs->geometry.zonedmeta_offset + (uint64_t) first * 8)
      == -1) {
    if (!write_refused (img))
      zq_error ("%s: writing the write-pointer table: %m", img->filename);
    errno = EIO;
    return -1;
  }
  /* Not under meta_lock: L2 lookups go on while the disk syncs. */
  r = sync_file_nolock (img);
  if (r == 0)
    zs->little_endian = false;
  return r;
}

int
zones_flush (struct zq_image *img)
{
  struct zone_set *zs = img->zones;
  uint32_t first = UINT32_MAX, end = 0, i;
  int r;

  pthread_mutex_lock (&zs->wp_write_lock);

  /* Capture the pointers first: every write they cover has completed, so
   * the metadata flush below makes their data durable before the
   * pointers are written.
   */
  pthread_mutex_lock (&zs->lock);
  for (i = 0; i < zs->nr_zones; i++) {
    struct zone *z = &zs->zones[i];
    if (z->conventional)
      continue;
    /* Unchanged ones too: wp_on_disk is set from it over [first, end). */
    z->wp_flushing = z->wp;
    if (z->wp == z->wp_on_disk)
      continue;
    store_be64 (zs->wp_table + (size_t) i * 8,
                wp_entry_encode (&zs->geometry, i, z->wp));
    if (first == UINT32_MAX)
      first = i;
    end = i + 1;
  }
  pthread_mutex_unlock (&zs->lock);

  r = flush_image (img);

  if (r == 0 && first != UINT32_MAX) {
    r = write_wp_entries (img, first, end);
    if (r == 0) {
      pthread_mutex_lock (&zs->lock);
      for (i = first; i < end; i++)
        if (!zs->zones[i].conventional)
          zs->zones[i].wp_on_disk = zs->zones[i].wp_flushing;
      pthread_mutex_unlock (&zs->lock);
    }
  }
  pthread_mutex_unlock (&zs->wp_write_lock);
  return r;
}

int
zone_persist_wp (struct zq_image *img, uint32_t i, uint64_t wp)
{
  struct zone_set *zs = img->zones;
  bool on_disk;
  int r;

  /* Decided under wp_write_lock: a flush holds it from taking the
   * pointers to writing them, so wp_on_disk is what the table says (a
   * flush that took an older pointer has written it by now) and no
   * older pointer can be written after this one.
   */
  pthread_mutex_lock (&zs->wp_write_lock);
  pthread_mutex_lock (&zs->lock);
  on_disk = zs->zones[i].wp_on_disk == wp;
  pthread_mutex_unlock (&zs->lock);
  if (on_disk) {
    pthread_mutex_unlock (&zs->wp_write_lock);
    return 0;
  }
  store_be64 (zs->wp_table + (size_t) i * 8,
              wp_entry_encode (&zs->geometry, i, wp));
  r = write_wp_entries (img, i, i + 1);
  if (r == 0) {
    pthread_mutex_lock (&zs->lock);
    zs->zones[i].wp_on_disk = wp;
    pthread_mutex_unlock (&zs->lock);
  }
  pthread_mutex_unlock (&zs->wp_write_lock);
  return r;
}

/* Public: geometry and reports. */

bool
zq_is_zoned (const struct zq_image *img)
{
  return img->zones != NULL;
}

int
zq_zone_geometry (const struct zq_image *img, struct zq_zone_geometry *g)
{
  if (img->zones == NULL) {
    errno = EINVAL;
    return -1;
  }
  *g = img->zones->geometry;
  /* A power of two, the format says. */
  g->zone_shift = (unsigned) __builtin_ctzll (g->zone_size);
  return 0;
}

void
zone_describe (const struct zone *z, struct zq_zone *out)
{
  out->start = z->start;
  out->length = z->length;
  /* A conventional zone is writable to its end, as Linux reports it. */
  out->capacity = z->conventional ? z->length : z->capacity;
  out->type = z->conventional ? ZQ_ZONE_TYPE_CONVENTIONAL
                              : ZQ_ZONE_TYPE_SEQWRITE_REQ;
  out->cond = zone_reported_cond (z);
  if (z->conventional)
    out->write_pointer = z->start;
  else if (z->cond == ZQ_ZONE_COND_FULL)
    out->write_pointer = z->start + z->length;
  else
    out->write_pointer = z->wp;
}

int
zq_zone_report (struct zq_image *img, uint32_t first, uint32_t count,
                struct zq_zone *zones)
{
  struct zone_set *zs = img->zones;
  uint32_t i;

  if (zs == NULL) {
    zq_error ("%s: zone report on an image that is not zoned",
              img->filename);
    errno = EINVAL;
    return -1;
  }
  pthread_mutex_lock (&zs->lock);
  for (i = 0; i < count && first + i < zs->nr_zones && first + i >= first;
       i++)
    zone_describe (&zs->zones[first + i], &zones[i]);
  pthread_mutex_unlock (&zs->lock);
  return (int) i;
}
