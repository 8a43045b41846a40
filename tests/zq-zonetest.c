/* zq-zonetest: checks the zone rules of an NBD export, one request at a
 * time, from a script; or writes several zones at once over several
 * connections.
 *
 *   zq-zonetest script URI [FILE]
 *   zq-zonetest parallel [--zone-size SIZE] [--length LEN] [--bs BYTES]
 *                        [--depth N] [--tag N] URI ZONE...
 *
 * script: reads FILE (default: standard input), one request and the
 * outcome it must have per line, and prints one line per check:
 *
 *   row write at the WP advances it     label of the lines that follow
 *   set zs 1M                           a variable; "zs" also defines zN
 *   write z1 4k tag=2 => ok             pattern 2 at zone 1's start
 *   read z1 4k => tag=2                 the bytes read are pattern 2
 *   read z1+4k 60k => zero              ... or zeroes
 *   write z1+8k 4k => EIO               the request fails with EIO
 *   zero z1+4k zs-4k fua => ok          write zeroes (flags: fua nohole fast)
 *   trim z1 zs => ok
 *   flush => ok
 *   status z1+4k 4k => hole,zero        base:allocation of every extent
 *                                       (hole,zero, data, nohole, or an error)
 *   save before z1 zs                   remember these bytes ...
 *   read z1 zs => saved=before          ... and compare with them later
 *   size => 12M                         export size
 *   minblock => 512                     block size constraints
 *   prefblock => 64k
 *   readonly => yes
 *
 * Numbers take the suffixes k, M, G (powers of 1024) and are combined with
 * + - * (no spaces); "zN" is N * zs, "end" the export size.  Outcomes:
 * ok, EIO, EINVAL, ENOSPC, EPERM, ENOTSUP, error (any failure).  libnbd's
 * strict checks are off, so every request reaches the server and every
 * verdict is the server's.  The pattern is a function of the absolute
 * offset and the tag (zq-pattern.h): stale or misplaced data never
 * matches.
 *
 * parallel: one thread and one connection per ZONE, all started together;
 * each writes LEN bytes of pattern TAG from its zone's start in requests of
 * BYTES, with up to N in flight, flushes, then reads its zone back.
 *
 * Exit status: 0 every check passed, 1 a check failed, 2 usage or a lost
 * connection.
 */

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "zq-pattern.h"

#define IO_CHUNK (4u * 1024 * 1024)
#define MAX_TOKENS 32
#define MAX_VARS 64
#define MAX_SAVED 16

static const char *progname = "zq-zonetest";

/* ---- outcomes ---------------------------------------------------- */

static const struct { const char *name; int err; } outcomes[] = {
  { "ok", 0 },
  { "EIO", EIO },
  { "EINVAL", EINVAL },
  { "ENOSPC", ENOSPC },
  { "EPERM", EPERM },
  { "ENOTSUP", ENOTSUP },
  { "EOVERFLOW", EOVERFLOW },
  { "error", -1 },              /* any failure */
};

/* Parses an outcome name; returns false if it is not one. */
static bool
parse_outcome (const char *s, int *err)
{
  size_t i;

  for (i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++)
    if (strcmp (s, outcomes[i].name) == 0) {
      *err = outcomes[i].err;
      return true;
    }
  return false;
}

static const char *
errno_name (int err)
{
  size_t i;
  static char unknown[32];

  for (i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++)
    if (outcomes[i].err == err)
      return outcomes[i].name;
  if (err == ENOTCONN) return "ENOTCONN";
  if (err == ESHUTDOWN) return "ESHUTDOWN";
  if (err == ENOMEM) return "ENOMEM";
  snprintf (unknown, sizeof unknown, "errno %d", err);
  return unknown;
}

/* ---- script state ------------------------------------------------ */

struct var {
  char name[32];
  uint64_t value;
};

struct saved {
  char name[32];
  uint64_t offset, length;
  unsigned char *bytes;
};

static struct nbd_handle *nbd;
static uint64_t export_size;
static struct var vars[MAX_VARS];
static size_t nr_vars;
static struct saved saved[MAX_SAVED];
static size_t nr_saved;
static char row[256] = "(no row)";
static unsigned nr_checks, nr_failed;
static unsigned char *io_buf;   /* IO_CHUNK bytes */


/* The line being run, for messages. */
static const char *cur_line;
static unsigned cur_lineno;

static void
check_ok (void)
{
  nr_checks++;
  printf ("ok      %s: %s\n", row, cur_line);
}

static void check_failed (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));
static void script_error (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2), noreturn));

static void
check_failed (const char *fmt, ...)
{
  va_list ap;

  nr_checks++;
  nr_failed++;
  printf ("FAILED  %s: %s: ", row, cur_line);
  va_start (ap, fmt);
  vprintf (fmt, ap);
  va_end (ap);
  printf ("\n");
  fflush (stdout);
}

static void
script_error (const char *fmt, ...)
{
  va_list ap;

  fprintf (stderr, "%s: line %u: ", progname, cur_lineno);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fprintf (stderr, ": %s\n", cur_line);
  exit (2);
}

/* A request failed without reaching a verdict (the server went away):
 * nothing after it can be checked.
 */
static void
die_if_disconnected (int err)
{
  if (err == ENOTCONN || err == ESHUTDOWN || err == ECONNRESET ||
      err == EPIPE) {
    check_failed ("lost the connection: %s", nbd_get_error ());
    printf ("%s: %u checks, %u failed (stopped: no connection)\n",
            progname, nr_checks, nr_failed);
    exit (2);
  }
}

static struct var *
find_var (const char *name, size_t len)
{
  size_t i;

  for (i = 0; i < nr_vars; i++)
    if (strlen (vars[i].name) == len && strncmp (vars[i].name, name, len) == 0)
      return &vars[i];
  return NULL;
}

static void
set_var (const char *name, uint64_t value)
{
  struct var *v = find_var (name, strlen (name));

  if (v == NULL) {
    if (nr_vars == MAX_VARS || strlen (name) >= sizeof vars[0].name)
      script_error ("too many variables or name too long");
    v = &vars[nr_vars++];
    strcpy (v->name, name);
  }
  v->value = value;
}

/* ---- expressions: atom ('*' atom)* (('+'|'-') ...)* ------------------ */

static uint64_t parse_sum (const char **p);

static uint64_t
parse_atom (const char **p)
{
  const char *s = *p;
  uint64_t value;

  if (*s == '(') {
    s++;
    value = parse_sum (&s);
    if (*s != ')')
      script_error ("missing ')'");
    *p = s + 1;
    return value;
  }
  if (isdigit ((unsigned char) *s)) {
    char *end;

    errno = 0;
    value = strtoull (s, &end, 0);
    if (errno != 0)
      script_error ("bad number");
    switch (*end) {
    case 'k': case 'K': value <<= 10; end++; break;
    case 'm': case 'M': value <<= 20; end++; break;
    case 'g': case 'G': value <<= 30; end++; break;
    }
    *p = end;
    return value;
  }
  if (isalpha ((unsigned char) *s) || *s == '_') {
    const char *start = s;
    struct var *v;

    while (isalnum ((unsigned char) *s) || *s == '_')
      s++;
    *p = s;
    if ((size_t) (s - start) == 3 && strncmp (start, "end", 3) == 0)
      return export_size;
    v = find_var (start, s - start);
    if (v != NULL)
      return v->value;
    /* zN: the start of zone N. */
    if (start[0] == 'z' && s - start > 1) {
      const char *d;
      struct var *zs = find_var ("zs", 2);

      for (d = start + 1; d < s; d++)
        if (!isdigit ((unsigned char) *d))
          script_error ("unknown name '%.*s'", (int) (s - start), start);
      if (zs == NULL)
        script_error ("zone %.*s used before 'set zs SIZE'",
                      (int) (s - start - 1), start + 1);
      return strtoull (start + 1, NULL, 10) * zs->value;
    }
    script_error ("unknown name '%.*s'", (int) (s - start), start);
  }
  script_error ("expected a number or a name at '%s'", s);
  return 0;
}

static uint64_t
parse_product (const char **p)
{
  uint64_t value = parse_atom (p);

  while (**p == '*') {
    (*p)++;
    value *= parse_atom (p);
  }
  return value;
}

static uint64_t
parse_sum (const char **p)
{
  uint64_t value = parse_product (p);

  for (;;) {
    if (**p == '+') {
      (*p)++;
      value += parse_product (p);
    }
    else if (**p == '-') {
      (*p)++;
      value -= parse_product (p);
    }
    else
      return value;
  }
}

static uint64_t
eval (const char *s)
{
  const char *p = s;
  uint64_t value = parse_sum (&p);

  if (*p != '\0')
    script_error ("junk '%s' after an expression", p);
  return value;
}

/* ---- checks -------------------------------------------------------- */

/* Compares a request's result with the expected outcome. */
static void
check_outcome (int r, int expected)
{
  int err = r == -1 ? nbd_get_errno () : 0;

  if (r == -1)
    die_if_disconnected (err);
  if (expected == 0 && r == 0)
    check_ok ();
  else if (expected == 0)
    check_failed ("expected success, got %s (%s)", errno_name (err),
                  nbd_get_error ());
  else if (r == 0)
    check_failed ("expected %s, but the request succeeded",
                  expected == -1 ? "a failure" : errno_name (expected));
  else if (expected == -1 || err == expected)
    check_ok ();
  else
    check_failed ("expected %s, got %s (%s)", errno_name (expected),
                  errno_name (err), nbd_get_error ());
}

/* Says what a sector that did not match looks like, to tell stale data
 * from zeroes from garbage.
 */
static const char *
describe_sector (const unsigned char *buf, uint64_t offset, size_t len)
{
  static char what[64];
  size_t n = len < 512 ? len : 512;
  uint32_t tag;

  if (zq_zero_mismatch (buf, n) == n)
    return "zeroes";
  for (tag = 0; tag < 64; tag++)
    if (zq_pattern_mismatch (buf, offset, n, tag) == n) {
      snprintf (what, sizeof what, "pattern tag=%" PRIu32, tag);
      return what;
    }
  return "other data";
}

enum read_expect { READ_ZERO, READ_TAG, READ_SAVED };

static void
do_read (uint64_t offset, uint64_t length, const char *expect)
{
  enum read_expect kind;
  uint32_t tag = 0;
  struct saved *sv = NULL;
  int expected_err;
  uint64_t done;

  if (strcmp (expect, "zero") == 0)
    kind = READ_ZERO;
  else if (strncmp (expect, "tag=", 4) == 0) {
    kind = READ_TAG;
    tag = eval (expect + 4);
  }
  else if (strncmp (expect, "saved=", 6) == 0) {
    size_t i;

    kind = READ_SAVED;
    for (i = 0; i < nr_saved; i++)
      if (strcmp (saved[i].name, expect + 6) == 0)
        sv = &saved[i];
    if (sv == NULL)
      script_error ("nothing saved as '%s'", expect + 6);
    if (sv->offset != offset || sv->length != length)
      script_error ("'%s' saved another range", expect + 6);
  }
  else if (parse_outcome (expect, &expected_err)) {
    int r = 0;

    for (done = 0; done < length && r == 0; done += IO_CHUNK) {
      uint64_t n = length - done < IO_CHUNK ? length - done : IO_CHUNK;
      r = nbd_pread (nbd, io_buf, n, offset + done, 0);
    }
    check_outcome (r, expected_err);
    return;
  }
  else
    script_error ("a read expects zero, tag=N, saved=NAME or an error");

  for (done = 0; done < length; done += IO_CHUNK) {
    uint64_t n = length - done < IO_CHUNK ? length - done : IO_CHUNK;
    size_t bad;

    if (nbd_pread (nbd, io_buf, n, offset + done, 0) == -1) {
      die_if_disconnected (nbd_get_errno ());
      check_failed ("the read failed: %s (%s)",
                    errno_name (nbd_get_errno ()), nbd_get_error ());
      return;
    }
    switch (kind) {
    case READ_ZERO:
      bad = zq_zero_mismatch (io_buf, n);
      break;
    case READ_TAG:
      bad = zq_pattern_mismatch (io_buf, offset + done, n, tag);
      break;
    default:
      bad = n;
      for (size_t i = 0; i < n; i++)
        if (io_buf[i] != sv->bytes[done + i]) {
          bad = i;
          break;
        }
    }
    if (bad < n) {
      uint64_t at = offset + done + bad;
      size_t sector = bad & ~(size_t) 511;
      unsigned expected_byte =
        kind == READ_ZERO ? 0 :
        kind == READ_TAG ? zq_pattern_byte (at, tag) : sv->bytes[done + bad];

      check_failed ("byte at %" PRIu64 " (0x%" PRIx64 ") is 0x%02x, "
                    "expected 0x%02x; its sector holds %s",
                    at, at, io_buf[bad], expected_byte,
                    describe_sector (io_buf + sector, offset + done + sector,
                                     n - sector));
      return;
    }
  }
  check_ok ();
}

static void
do_save (const char *name, uint64_t offset, uint64_t length)
{
  struct saved *sv;
  uint64_t done;

  if (nr_saved == MAX_SAVED || strlen (name) >= sizeof sv->name)
    script_error ("too many saved ranges or name too long");
  sv = &saved[nr_saved];
  sv->bytes = malloc (length);
  if (sv->bytes == NULL)
    script_error ("cannot save %" PRIu64 " bytes", length);
  for (done = 0; done < length; done += IO_CHUNK) {
    uint64_t n = length - done < IO_CHUNK ? length - done : IO_CHUNK;

    if (nbd_pread (nbd, sv->bytes + done, n, offset + done, 0) == -1) {
      die_if_disconnected (nbd_get_errno ());
      check_failed ("could not read the range to save: %s",
                    nbd_get_error ());
      free (sv->bytes);
      return;
    }
  }
  strcpy (sv->name, name);
  sv->offset = offset;
  sv->length = length;
  nr_saved++;
  check_ok ();
}

/* Writes (or writes zeroes, or trims) LENGTH bytes in one request. */
static void
do_modify (const char *cmd, uint64_t offset, uint64_t length,
           uint32_t tag, uint32_t flags, int expected)
{
  int r;

  if (strcmp (cmd, "write") == 0) {
    unsigned char *buf = malloc (length ? length : 1);

    if (buf == NULL)
      script_error ("out of memory for a write of %" PRIu64, length);
    zq_pattern_fill (buf, offset, length, tag);
    r = nbd_pwrite (nbd, buf, length, offset, flags);
    free (buf);
  }
  else if (strcmp (cmd, "zero") == 0)
    r = nbd_zero (nbd, length, offset, flags);
  else
    r = nbd_trim (nbd, length, offset, flags);
  check_outcome (r, expected);
}

struct status_walk {
  uint64_t next;                /* where the next extent must start */
  uint32_t want_mask, want_value;
  bool bad;
  uint64_t bad_offset, bad_length;
  uint32_t bad_flags;
};

static int
status_extent (void *opaque, const char *context, uint64_t offset,
               uint32_t *entries, size_t nr_entries, int *error)
{
  struct status_walk *w = opaque;
  size_t i;

  if (strcmp (context, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
    return 0;
  for (i = 0; i + 1 < nr_entries; i += 2) {
    if (!w->bad && (entries[i + 1] & w->want_mask) != w->want_value) {
      w->bad = true;
      w->bad_offset = offset;
      w->bad_length = entries[i];
      w->bad_flags = entries[i + 1];
    }
    offset += entries[i];
  }
  w->next = offset;
  return 0;
}

static const char *
flags_name (uint32_t flags)
{
  switch (flags & 3) {
  case 0: return "data";
  case LIBNBD_STATE_HOLE: return "hole";
  case LIBNBD_STATE_ZERO: return "data,zero";
  default: return "hole,zero";
  }
}

/* Every extent of [offset, offset + length) must match the expectation:
 * "hole,zero" (both flags), "data" (neither), "nohole" (not a hole); or
 * the request must fail with the outcome given.
 */
static void
do_status (uint64_t offset, uint64_t length, const char *expect)
{
  struct status_walk w = { .next = offset };
  uint64_t end = offset + length;
  int expected_err;

  if (parse_outcome (expect, &expected_err)) {
    check_outcome (nbd_block_status (nbd, length, offset,
                                     (nbd_extent_callback) {
                                       .callback = status_extent,
                                       .user_data = &w }, 0),
                   expected_err);
    return;
  }
  if (strcmp (expect, "hole,zero") == 0)
    w.want_mask = 3, w.want_value = 3;
  else if (strcmp (expect, "data") == 0)
    w.want_mask = 3, w.want_value = 0;
  else if (strcmp (expect, "nohole") == 0)
    w.want_mask = LIBNBD_STATE_HOLE, w.want_value = 0;
  else
    script_error ("status expects hole,zero, data or nohole");

  while (w.next < end && !w.bad) {
    uint64_t before = w.next;
    uint64_t n = end - w.next > (UINT64_C (1) << 30) ? UINT64_C (1) << 30
                                                      : end - w.next;

    if (nbd_block_status (nbd, n, w.next,
                          (nbd_extent_callback) { .callback = status_extent,
                                                  .user_data = &w },
                          0) == -1) {
      die_if_disconnected (nbd_get_errno ());
      check_failed ("block status failed: %s", nbd_get_error ());
      return;
    }
    if (w.next <= before) {
      check_failed ("block status made no progress at %" PRIu64, before);
      return;
    }
  }
  if (w.bad)
    check_failed ("extent at %" PRIu64 " (0x%" PRIx64 "), %" PRIu64
                  " bytes, is %s (flags %" PRIu32 "), expected %s",
                  w.bad_offset, w.bad_offset, w.bad_length,
                  flags_name (w.bad_flags), w.bad_flags, expect);
  else
    check_ok ();
}

static void
check_number (const char *what, int64_t got, const char *expect)
{
  uint64_t want = eval (expect);

  if (got < 0)
    check_failed ("could not get the %s: %s", what, nbd_get_error ());
  else if ((uint64_t) got != want)
    check_failed ("%s is %" PRIi64 ", expected %" PRIu64, what, got, want);
  else
    check_ok ();
}

/* Runs one line of a script. */
static void
run_line (char *line)
{
  char *tok[MAX_TOKENS];
  size_t n = 0, nargs, i;
  char *arrow = NULL, *save = NULL, *t;
  const char *expect = NULL;
  char *nl;

  if ((nl = strchr (line, '\n')) != NULL)
    *nl = '\0';
  while (isspace ((unsigned char) *line))
    line++;
  if (*line == '\0' || *line == '#')
    return;
  cur_line = line;

  if (strncmp (line, "row ", 4) == 0) {
    snprintf (row, sizeof row, "%s", line + 4);
    printf ("== %s\n", row);
    return;
  }

  /* Tokenise a copy: cur_line stays whole for messages. */
  line = strdup (line);
  for (t = strtok_r (line, " \t", &save); t != NULL;
       t = strtok_r (NULL, " \t", &save)) {
    if (n == MAX_TOKENS)
      script_error ("too many words");
    tok[n++] = t;
  }
  if (n == 0) {
    free (line);
    return;
  }
  nargs = n;
  for (i = 0; i < n; i++)
    if (strcmp (tok[i], "=>") == 0) {
      arrow = tok[i];
      nargs = i;
      if (i + 2 != n)
        script_error ("'=>' must be followed by exactly one outcome");
      expect = tok[i + 1];
    }
  (void) arrow;

  if (strcmp (tok[0], "set") == 0) {
    if (nargs != 3 || expect)
      script_error ("usage: set NAME EXPR");
    set_var (tok[1], eval (tok[2]));
  }
  else if (strcmp (tok[0], "write") == 0 || strcmp (tok[0], "zero") == 0 ||
           strcmp (tok[0], "trim") == 0) {
    uint32_t tag = 1, flags = 0;
    int expected;

    if (nargs < 3 || expect == NULL || !parse_outcome (expect, &expected))
      script_error ("usage: %s OFFSET LENGTH [OPTIONS] => OUTCOME", tok[0]);
    for (i = 3; i < nargs; i++) {
      if (strncmp (tok[i], "tag=", 4) == 0 && strcmp (tok[0], "write") == 0)
        tag = eval (tok[i] + 4);
      else if (strcmp (tok[i], "fua") == 0)
        flags |= LIBNBD_CMD_FLAG_FUA;
      else if (strcmp (tok[i], "nohole") == 0 && strcmp (tok[0], "zero") == 0)
        flags |= LIBNBD_CMD_FLAG_NO_HOLE;
      else if (strcmp (tok[i], "fast") == 0 && strcmp (tok[0], "zero") == 0)
        flags |= LIBNBD_CMD_FLAG_FAST_ZERO;
      else
        script_error ("unknown option '%s'", tok[i]);
    }
    do_modify (tok[0], eval (tok[1]), eval (tok[2]), tag, flags, expected);
  }
  else if (strcmp (tok[0], "flush") == 0) {
    int expected;

    if (nargs != 1 || expect == NULL || !parse_outcome (expect, &expected))
      script_error ("usage: flush => OUTCOME");
    check_outcome (nbd_flush (nbd, 0), expected);
  }
  else if (strcmp (tok[0], "read") == 0) {
    if (nargs != 3 || expect == NULL)
      script_error ("usage: read OFFSET LENGTH => zero|tag=N|saved=NAME|ERROR");
    do_read (eval (tok[1]), eval (tok[2]), expect);
  }
  else if (strcmp (tok[0], "save") == 0) {
    if (nargs != 4 || expect)
      script_error ("usage: save NAME OFFSET LENGTH");
    do_save (tok[1], eval (tok[2]), eval (tok[3]));
  }
  else if (strcmp (tok[0], "status") == 0) {
    if (nargs != 3 || expect == NULL)
      script_error ("usage: status OFFSET LENGTH => hole,zero|data|nohole|ERROR");
    do_status (eval (tok[1]), eval (tok[2]), expect);
  }
  else if (strcmp (tok[0], "size") == 0 && nargs == 1 && expect)
    check_number ("export size", nbd_get_size (nbd), expect);
  else if (strcmp (tok[0], "minblock") == 0 && nargs == 1 && expect)
    check_number ("minimum block size",
                  nbd_get_block_size (nbd, LIBNBD_SIZE_MINIMUM), expect);
  else if (strcmp (tok[0], "prefblock") == 0 && nargs == 1 && expect)
    check_number ("preferred block size",
                  nbd_get_block_size (nbd, LIBNBD_SIZE_PREFERRED), expect);
  else if (strcmp (tok[0], "readonly") == 0 && nargs == 1 && expect) {
    int ro = nbd_is_read_only (nbd);
    bool want = strcmp (expect, "yes") == 0;

    if (!want && strcmp (expect, "no") != 0)
      script_error ("readonly expects yes or no");
    if (ro == -1)
      check_failed ("%s", nbd_get_error ());
    else if (ro != want)
      check_failed ("the export is%s read-only", ro ? "" : " not");
    else
      check_ok ();
  }
  else
    script_error ("unknown command or wrong arguments");
  free (line);
}

static struct nbd_handle *
connect_to (const char *uri)
{
  struct nbd_handle *h = nbd_create ();

  if (h == NULL ||
      nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
      /* Send every request as it is: the server must judge it. */
      nbd_set_strict_mode (h, 0) == -1 ||
      nbd_connect_uri (h, uri) == -1) {
    fprintf (stderr, "%s: %s: %s\n", progname, uri, nbd_get_error ());
    exit (2);
  }
  return h;
}

static int
run_script (const char *uri, const char *file)
{
  FILE *fp = stdin;
  char *line = NULL;
  size_t cap = 0;

  if (file != NULL && (fp = fopen (file, "r")) == NULL) {
    perror (file);
    return 2;
  }
  io_buf = malloc (IO_CHUNK);
  if (io_buf == NULL) {
    perror ("malloc");
    return 2;
  }
  nbd = connect_to (uri);
  export_size = nbd_get_size (nbd);

  while (getline (&line, &cap, fp) != -1) {
    cur_lineno++;
    run_line (line);
    fflush (stdout);
  }
  free (line);
  if (fp != stdin)
    fclose (fp);

  if (nbd_shutdown (nbd, 0) == -1)
    fprintf (stderr, "%s: shutdown: %s\n", progname, nbd_get_error ());
  nbd_close (nbd);
  printf ("%s: %u checks, %u failed\n", progname, nr_checks, nr_failed);
  return nr_failed ? 1 : 0;
}

/* ---- parallel ------------------------------------------------------ */

struct writer {
  pthread_t thread;
  const char *uri;
  uint32_t zone;
  uint64_t start;               /* the zone's start */
  unsigned char *data;          /* the LEN bytes written */
  uint64_t write_errors;
  int first_errno;
  uint64_t first_error_offset;
  bool failed;
  char message[256];
};

static uint64_t par_length = 4u << 20, par_bs = 64u << 10;
static unsigned par_depth = 1;
static uint32_t par_tag = 1;
static pthread_barrier_t start_barrier;

struct write_done {
  struct writer *w;
  uint64_t offset;
};

static int
write_completed (void *opaque, int *error)
{
  struct write_done *d = opaque;

  if (*error != 0) {
    if (d->w->write_errors++ == 0) {
      d->w->first_errno = *error;
      d->w->first_error_offset = d->offset;
    }
  }
  free (d);
  return 1;                     /* retire the command */
}

static void *
parallel_writer (void *opaque)
{
  struct writer *w = opaque;
  struct nbd_handle *h = connect_to (w->uri);
  uint64_t done;
  unsigned char *buf;

  pthread_barrier_wait (&start_barrier);
  for (done = 0; done < par_length; done += par_bs) {
    uint64_t n = par_length - done < par_bs ? par_length - done : par_bs;
    struct write_done *d = malloc (sizeof *d);

    while (nbd_aio_in_flight (h) >= (int) par_depth)
      if (nbd_poll (h, -1) == -1)
        goto lost;
    d->w = w;
    d->offset = w->start + done;
    if (nbd_aio_pwrite (h, w->data + done, n, w->start + done,
                        (nbd_completion_callback) {
                          .callback = write_completed, .user_data = d },
                        0) == -1)
      goto lost;
  }
  while (nbd_aio_in_flight (h) > 0)
    if (nbd_poll (h, -1) == -1)
      goto lost;
  if (w->write_errors) {
    w->failed = true;
    snprintf (w->message, sizeof w->message,
              "%" PRIu64 " writes failed, the first at %" PRIu64
              " with %s", w->write_errors, w->first_error_offset,
              errno_name (w->first_errno));
    goto out;
  }
  if (nbd_flush (h, 0) == -1)
    goto lost;

  /* Every connection sees what every other wrote and flushed; read back
   * through this one.
   */
  buf = malloc (par_length);
  if (nbd_pread (h, buf, par_length, w->start, 0) == -1) {
    free (buf);
    goto lost;
  }
  for (done = 0; done < par_length; done++)
    if (buf[done] != w->data[done]) {
      w->failed = true;
      snprintf (w->message, sizeof w->message,
                "byte at %" PRIu64 " reads 0x%02x, wrote 0x%02x",
                w->start + done, buf[done], w->data[done]);
      break;
    }
  free (buf);
  goto out;

 lost:
  w->failed = true;
  snprintf (w->message, sizeof w->message, "%s", nbd_get_error ());
 out:
  nbd_shutdown (h, 0);
  nbd_close (h);
  return NULL;
}

static int
run_parallel (int argc, char **argv)
{
  static const struct option long_options[] = {
    { "zone-size", required_argument, NULL, 'z' },
    { "length", required_argument, NULL, 'l' },
    { "bs", required_argument, NULL, 'b' },
    { "depth", required_argument, NULL, 'd' },
    { "tag", required_argument, NULL, 't' },
    { NULL, 0, NULL, 0 },
  };
  uint64_t zone_size = 0;
  struct writer *writers;
  int c, i, nr, failed = 0;
  const char *uri;

  cur_line = "(command line)";
  while ((c = getopt_long (argc, argv, "", long_options, NULL)) != -1) {
    switch (c) {
    case 'z': zone_size = eval (optarg); break;
    case 'l': par_length = eval (optarg); break;
    case 'b': par_bs = eval (optarg); break;
    case 'd': par_depth = eval (optarg); break;
    case 't': par_tag = eval (optarg); break;
    default: return 2;
    }
  }
  if (zone_size == 0 || par_bs == 0 || par_depth == 0 || argc - optind < 2) {
    fprintf (stderr, "usage: %s parallel --zone-size SIZE [--length LEN] "
             "[--bs BYTES] [--depth N] [--tag N] URI ZONE...\n", progname);
    return 2;
  }
  uri = argv[optind++];
  nr = argc - optind;
  writers = calloc (nr, sizeof *writers);
  pthread_barrier_init (&start_barrier, NULL, nr);
  for (i = 0; i < nr; i++) {
    struct writer *w = &writers[i];

    w->uri = uri;
    w->zone = strtoul (argv[optind + i], NULL, 10);
    w->start = w->zone * zone_size;
    w->data = malloc (par_length);
    zq_pattern_fill (w->data, w->start, par_length, par_tag);
    pthread_create (&w->thread, NULL, parallel_writer, w);
  }
  for (i = 0; i < nr; i++) {
    struct writer *w = &writers[i];

    pthread_join (w->thread, NULL);
    if (w->failed) {
      failed++;
      printf ("FAILED  zone %" PRIu32 ": %s\n", w->zone, w->message);
    }
    else
      printf ("ok      zone %" PRIu32 ": wrote %" PRIu64 " bytes from %"
              PRIu64 " in %" PRIu64 "-byte requests, %u in flight, "
              "read them back\n", w->zone, par_length, w->start, par_bs,
              par_depth);
  }
  return failed ? 1 : 0;
}

int
main (int argc, char **argv)
{
  if (argc >= 3 && strcmp (argv[1], "script") == 0 && argc <= 4)
    return run_script (argv[2], argc == 4 ? argv[3] : NULL);
  if (argc >= 2 && strcmp (argv[1], "parallel") == 0)
    return run_parallel (argc - 1, argv + 1);
  fprintf (stderr,
           "usage: %s script URI [FILE]\n"
           "       %s parallel --zone-size SIZE [--length LEN] [--bs BYTES] "
           "[--depth N] [--tag N] URI ZONE...\n", progname, progname);
  return 2;
}
