/* zqcow2-nbd: what the parts of the server share.
 *
 * main.c parses the command line, opens the one engine every connection
 * shares and runs the accept loop; listen.c makes the listening sockets;
 * captive.c runs the --run command; connection.c gives each client a
 * reader thread and a pool of workers; park-timer.c ends the waits of
 * parked writes; protocol.c negotiates;
 * transmission.c reads requests and executes them; reply.c writes
 * replies; block-status.c and zone-state.c answer NBD_CMD_BLOCK_STATUS.
 */
#ifndef ZQ_SERVER_H
#define ZQ_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "zqcow2.h"

#define PROGRAM_NAME "zqcow2-nbd"

/* The largest READ or WRITE the server accepts, and so the most memory
 * one request holds; the block sizes it advertises in NBD_INFO_BLOCK_SIZE
 * are the engine's (zq_block_limits), lowered to this.
 */
#define MAX_REQUEST_BYTES   (UINT32_C (32) << 20)

/* The export, fixed once the image is open. */
struct export {
  struct zq_image *img;
  const char *name;             /* -e, default "" */
  const char *description;      /* zq_description */
  uint64_t size;
  bool readonly;                /* -r, or the engine could only read */
  bool zoned;
  unsigned zone_shift;          /* log2 (zone size), zoned images only */
  uint32_t min_block, preferred_block, max_block;
};

extern struct export export;

/* export.c: opens the engine as the command line says and fills in
 * export.  Returns 0, or -1 once the engine has said why.
 */
struct options;
int export_open (const struct options *o);

/* Set by SIGINT/SIGTERM: connections stop taking requests. */
extern atomic_bool shutting_down;

/* log.c: every message, the engine's included, goes to stderr as
 * "zqcow2-nbd: ...".  Debug messages only with -v.
 */
extern bool verbose;
void server_error (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));
void server_debug (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));
void engine_log (enum zq_log_level level, const char *message);
/* The last error the engine logged on this thread, for the error reply
 * to the request that caused it; "" after engine_error_clear.
 */
void engine_error_clear (void);
const char *engine_error_message (void);

/* connection.c: serves one accepted socket on a new thread, and waits for
 * all of them at shutdown.
 */
int connection_start (int fd);
void connections_shutdown (void);
void connections_wait (void);

/* park-timer.c: expires the waits of parked writes on a zoned export. */
int park_timer_start (void);
void park_timer_stop (void);

#endif /* ZQ_SERVER_H */
