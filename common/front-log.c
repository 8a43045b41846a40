/* Messages of the command-line front ends (front-log.h). */
#include <config.h>

#include <stdio.h>

#include "front-log.h"

void
front_vlog (const char *program, const char *prefix, const char *fs,
            va_list args)
{
  char message[1024];

  vsnprintf (message, sizeof message, fs, args);
  fprintf (stderr, "%s: %s%s\n", program, prefix, message);
}
