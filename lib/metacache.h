/* A write-back cache of cluster-sized metadata tables (L2 tables,
 * refcount blocks), with least-recently-used eviction.
 *
 * Crash ordering is expressed as a dependency, not as scattered syncs:
 * a cache that depends on another writes that other cache back and syncs
 * the file before it writes any of its own dirty tables.  The L2 cache
 * depends on the refcount cache, so an L2 entry never reaches the disk
 * before the refcount of the cluster it points at, nor before that
 * cluster's data (the sync covers the data too).
 *
 * The caller holds the image's meta_lock around every call.
 */
#ifndef ZQ_METACACHE_H
#define ZQ_METACACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "overlap.h"

struct zq_image;
struct metacache;

/* what names the tables in messages ("L2 table"). */
struct metacache *metacache_new (struct zq_image *img, const char *what,
                                 uint32_t nr_slots, uint32_t table_size);
void metacache_free (struct metacache *c);

/* What the tables are, for the overlap check of their writes (overlap.h);
 * META_NONE until set.
 */
void metacache_set_kind (struct metacache *c, enum meta_kind kind);

void metacache_set_dependency (struct metacache *c,
                               struct metacache *depends_on);

/* Returns the table at host offset `offset`, reading it from the file on a
 * miss.  The pointer is valid until the next call on this cache.
 */
int metacache_get (struct metacache *c, uint64_t offset, uint8_t **table);

/* Returns a zero-filled table for a newly allocated cluster at `offset`,
 * without reading the file.  The table is marked dirty.
 */
int metacache_get_new (struct metacache *c, uint64_t offset,
                       uint8_t **table);

/* Marks a table returned by metacache_get as modified. */
void metacache_mark_dirty (struct metacache *c, const uint8_t *table);

/* Writes every dirty table back to the file (honouring the dependency).
 * Does not sync the file after the last write.
 */
int metacache_writeback (struct metacache *c);

bool metacache_has_dirty (const struct metacache *c);

/* Whether the file holds the table at offset, as cached, durably: it is
 * not dirty, and no table of this cache was written since the last sync
 * that succeeded started (img->durable_epoch).
 */
bool metacache_table_durable (const struct metacache *c, uint64_t offset);

/* For a flush that syncs without meta_lock: metacache_snapshot copies
 * every dirty table (at most max_bytes of them, else fails with E2BIG
 * and copies none) at a moment when everything they point at is about
 * to be synced.  After that sync, metacache_write_snapshot writes the
 * copies that are still due: not those whose table was written since
 * (eviction: newer content) or forgotten.  A table unchanged since the
 * snapshot becomes clean; a changed one stays dirty, its newer entries
 * not yet covered by the sync.  metacache_drop_snapshot abandons them.
 */
int metacache_snapshot (struct metacache *c, size_t max_bytes);
int metacache_write_snapshot (struct metacache *c);
void metacache_drop_snapshot (struct metacache *c);

/* For a caller that has just taken meta_lock, holds nothing derived
 * from the metadata yet and is about to get the table at `offset` (0:
 * one not allocated yet, which it may create): when that table is not
 * cached, makes the next few evictions find clean slots, so that they
 * need not sync with meta_lock held.  Once an eviction has had to write
 * a table, the dirty ones among the least recently used are written
 * here after a sync that runs without meta_lock (which may therefore be
 * dropped and retaken), up to a quarter of the cache at once, and only
 * when the next victims are dirty; those changed meanwhile stay dirty.
 * A caller that comes while another's sync runs waits for it (dropping
 * meta_lock too) rather than sync for the same tables.  Does nothing
 * for a cache without dependency.  Failures are left to the eviction,
 * which syncs under the lock and reports them.
 */
void metacache_make_room (struct metacache *c, uint64_t offset);

/* Forgets the table at offset, dirty or not (its cluster was freed). */
void metacache_forget (struct metacache *c, uint64_t offset);

/* Statistics for tests and debugging. */
struct metacache_stats {
  uint64_t hits, misses, evictions, writebacks;
  uint32_t nr_slots;
};
void metacache_get_stats (const struct metacache *c,
                          struct metacache_stats *stats);

#endif /* ZQ_METACACHE_H */
