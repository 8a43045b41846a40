/* A simulated power cut for one file (powercut.c). */
#ifndef ZQ_POWERCUT_H
#define ZQ_POWERCUT_H

#include <stdbool.h>
#include <stdint.h>

/* Starts tracing the descriptor open on `image` (an absolute path), with
 * `shadow` a new file for what stable storage holds.
 */
int powercut_start (const char *image, const char *shadow);
void powercut_stop (void);

/* Makes every `every`-th fdatasync of the traced file fail with EIO,
 * syncing nothing (0: none fails).
 */
void powercut_fail_syncs (unsigned every);

/* A gate for tests of what runs while a sync is in progress: the next
 * fdatasync of the traced file that starts while a write overlapping
 * [offset, offset + count) is not yet durable waits there, before
 * syncing anything, until powercut_release_sync.  One at a time.
 */
void powercut_hold_sync (uint64_t offset, uint64_t count);
/* Whether a sync is held at the gate, waiting up to `seconds` for one. */
bool powercut_sync_held (unsigned seconds);
void powercut_release_sync (void);

/* Writes to `out` what the disk could hold after a power cut now: the
 * synced writes and a random subset of the others.  at_cut runs while
 * no write can happen, to record what the caller expects.
 */
int powercut_image (const char *out, uint64_t *random_state,
                    void (*at_cut) (void *), void *opaque);

#endif /* ZQ_POWERCUT_H */
