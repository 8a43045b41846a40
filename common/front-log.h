/* Messages of the command-line front ends to stderr, one line each,
 * prefixed with the program's name.
 */
#ifndef ZQ_FRONT_LOG_H
#define ZQ_FRONT_LOG_H

#include <stdarg.h>

/* Writes "PROGRAM: PREFIXMESSAGE\n" in one call, so that lines from
 * different threads never interleave.
 */
void front_vlog (const char *program, const char *prefix, const char *fs,
                 va_list args) __attribute__ ((format (printf, 3, 0)));

#endif /* ZQ_FRONT_LOG_H */
