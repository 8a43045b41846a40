/* What the libFuzzer harnesses share: a private scratch directory, the
 * input written to a file there, and a quiet engine log.
 */
#ifndef ZQ_FUZZ_COMMON_H
#define ZQ_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* A directory of this process's own, made on first use under $TMPDIR
 * (a tmpfs is best: /dev/shm when TMPDIR is unset) and removed at exit.
 * Aborts if it cannot be made: a harness without it cannot run.
 */
const char *fuzz_dir (void);

/* The path of NAME inside fuzz_dir(), in a static buffer per call site's
 * choice of buf (at least 4096 bytes).
 */
const char *fuzz_path (char *buf, const char *name);

/* Replaces the file's contents with data, or aborts. */
void fuzz_write_file (const char *path, const uint8_t *data, size_t size);

/* Aborts (a finding) unless the file holds exactly data. */
void fuzz_assert_file_is (const char *path, const uint8_t *data,
                          size_t size, const char *what);

/* Sends the engine's messages nowhere, after formatting them (so the
 * formatting is exercised); FUZZ_VERBOSE=1 in the environment prints them.
 */
void fuzz_quiet_engine (void);

/* True if the input names an external data file (incompatible bit 2 of a
 * version 3 header), so that the harness must give one: a name taken
 * from the image would let a fuzzed input write to any file.
 */
int fuzz_wants_data_file (const uint8_t *data, size_t size);

#endif /* ZQ_FUZZ_COMMON_H */
