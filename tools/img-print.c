/* zqcow2-img: what more than one command prints the same way. */
#include <config.h>

#include <stdio.h>

#include "zqcow2.h"
#include "img-print.h"

/* A JSON string: quotes, backslashes and control characters escaped. */
void
json_string (const char *s)
{
  putchar ('"');
  for (; *s; s++) {
    unsigned char ch = *s;
    switch (ch) {
    case '"': fputs ("\\\"", stdout); break;
    case '\\': fputs ("\\\\", stdout); break;
    case '\n': fputs ("\\n", stdout); break;
    case '\t': fputs ("\\t", stdout); break;
    case '\r': fputs ("\\r", stdout); break;
    default:
      if (ch < 0x20 || ch == 0x7f)
        printf ("\\u%04x", ch);
      else
        putchar (ch);
    }
  }
  putchar ('"');
}

const char *
cond_name (enum zq_zone_cond cond)
{
  switch (cond) {
  case ZQ_ZONE_COND_NOT_WP: return "not-write-pointer";
  case ZQ_ZONE_COND_EMPTY: return "empty";
  case ZQ_ZONE_COND_IMP_OPEN: return "implicit-open";
  case ZQ_ZONE_COND_EXP_OPEN: return "explicit-open";
  case ZQ_ZONE_COND_CLOSED: return "closed";
  case ZQ_ZONE_COND_READONLY: return "read-only";
  case ZQ_ZONE_COND_FULL: return "full";
  case ZQ_ZONE_COND_OFFLINE: return "offline";
  }
  return "unknown";
}
