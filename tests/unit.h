/* A minimal harness for the C unit tests: CHECK records a failure with
 * its line and goes on, so one run shows every broken expectation.
 */
#ifndef ZQ_UNIT_H
#define ZQ_UNIT_H

#include <stdio.h>

static int unit_failures;

#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf (stderr, "%s:%d: check failed: %s\n",                     \
               __FILE__, __LINE__, #cond);                              \
      unit_failures++;                                                  \
    }                                                                   \
  } while (0)

#define UNIT_EXIT()                                                     \
  do {                                                                  \
    if (unit_failures)                                                  \
      fprintf (stderr, "%d check(s) failed\n", unit_failures);          \
    return unit_failures ? 1 : 0;                                       \
  } while (0)

#endif /* ZQ_UNIT_H */
