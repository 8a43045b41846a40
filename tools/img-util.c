/* zqcow2-img: what the commands share: messages, parsing values, and the
 * command line every command has.
 */
#include <config.h>

#include <assert.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zqcow2.h"
#include "img-util.h"

/* ------------------------------------------------------------------ */
/* Messages */

bool verbose;

void
log_to_stderr (enum zq_log_level level, const char *message)
{
  switch (level) {
  case ZQ_LOG_ERROR:
    fprintf (stderr, "%s: %s\n", PROGRAM, message);
    break;
  case ZQ_LOG_WARNING:
    fprintf (stderr, "%s: warning: %s\n", PROGRAM, message);
    break;
  case ZQ_LOG_DEBUG:
    if (verbose)
      fprintf (stderr, "%s: debug: %s\n", PROGRAM, message);
    break;
  }
}

void
error (const char *fs, ...)
{
  va_list args;

  fprintf (stderr, "%s: ", PROGRAM);
  va_start (args, fs);
  vfprintf (stderr, fs, args);
  va_end (args);
  fputc ('\n', stderr);
}

void
usage_error (const char *command, const char *fs, ...)
{
  va_list args;

  fprintf (stderr, "%s: %s%s", PROGRAM, command ? command : "",
           command ? ": " : "");
  va_start (args, fs);
  vfprintf (stderr, fs, args);
  va_end (args);
  fprintf (stderr, "\nTry '%s %s%s--help' for more information.\n",
           PROGRAM, command ? command : "", command ? " " : "");
  exit (EXIT_FAILURE);
}

/* ------------------------------------------------------------------ */
/* Values */

/* A size in bytes: decimal digits with an optional K, M, G or T suffix
 * (powers of 1024, either case).  Nothing else: no sign, no spaces, no
 * fractions.
 */
bool
parse_size (const char *s, uint64_t *out)
{
  uint64_t v = 0, mult = 1;
  const char *p = s;

  if (*p < '0' || *p > '9')
    return false;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > (UINT64_MAX - (*p - '0')) / 10)
      return false;
    v = v * 10 + (*p - '0');
  }
  switch (*p) {
  case '\0': break;
  case 'k': case 'K': mult = UINT64_C (1) << 10; p++; break;
  case 'm': case 'M': mult = UINT64_C (1) << 20; p++; break;
  case 'g': case 'G': mult = UINT64_C (1) << 30; p++; break;
  case 't': case 'T': mult = UINT64_C (1) << 40; p++; break;
  default: return false;
  }
  if (*p != '\0' || v > UINT64_MAX / mult)
    return false;
  *out = v * mult;
  return true;
}

/* A plain decimal number up to max. */
bool
parse_number (const char *s, uint64_t max, uint64_t *out)
{
  uint64_t v = 0;
  const char *p = s;

  if (*p == '\0')
    return false;
  for (; *p; p++) {
    if (*p < '0' || *p > '9' || v > (UINT64_MAX - (*p - '0')) / 10)
      return false;
    v = v * 10 + (*p - '0');
  }
  if (v > max)
    return false;
  *out = v;
  return true;
}

bool
parse_bool (const char *s, bool *out)
{
  if (!strcmp (s, "on") || !strcmp (s, "yes") || !strcmp (s, "true")) {
    *out = true;
    return true;
  }
  if (!strcmp (s, "off") || !strcmp (s, "no") || !strcmp (s, "false")) {
    *out = false;
    return true;
  }
  return false;
}

/* ------------------------------------------------------------------ */
/* The command line */

/* --output=human|json */
static bool
parse_output (const char *command, const char *s)
{
  if (!strcmp (s, "json"))
    return true;
  if (!strcmp (s, "human"))
    return false;
  usage_error (command, "--output '%s': use human or json", s);
}

/* getopt found an option it does not know: name it.  A short option is
 * named by optopt (argv may have been permuted); a digit there is most
 * likely a negative number.
 */
static void unknown_option (const char *command, char **argv)
  __attribute__ ((noreturn));

static void
unknown_option (const char *command, char **argv)
{
  if (optopt >= '0' && optopt <= '9')
    usage_error (command, "unknown option '-%c' (negative numbers are not "
                 "allowed)", optopt);
  if (optopt)
    usage_error (command, "unknown option '-%c'", optopt);
  usage_error (command, "unknown option '%s'", argv[optind - 1]);
}

/* getopt's tables for the command: --help (and --output if it takes
 * it) first, then its own options.  The ':' makes getopt report a
 * missing argument as ':', apart from an unknown option ('?'); '+'
 * stops at the first operand.
 */
static void
build_option_tables (struct command_line *cl)
{
  const struct command *cmd = cl->command;
  static const struct option help = { "help", no_argument, NULL, 'h' };
  static const struct option output = {
    "output", required_argument, NULL, 'O'
  };
  const size_t max_long = sizeof cl->all_long_options /
                          sizeof cl->all_long_options[0];
  const struct option *own;
  size_t n = 0;
  int len;

  len = snprintf (cl->all_short_options, sizeof cl->all_short_options,
                  "%s:h%s", cmd->options_first ? "+" : "",
                  cmd->short_options ? cmd->short_options : "");
  assert (len > 0 && (size_t) len < sizeof cl->all_short_options);

  cl->all_long_options[n++] = help;
  if (cmd->output)
    cl->all_long_options[n++] = output;
  for (own = cmd->long_options; own && own->name; own++) {
    assert (n < max_long - 1);
    cl->all_long_options[n++] = *own;
  }
  memset (&cl->all_long_options[n], 0, sizeof cl->all_long_options[n]);
}

int
next_option (struct command_line *cl)
{
  int c;

  if (cl->all_short_options[0] == '\0')
    build_option_tables (cl);

  for (;;) {
    c = getopt_long (cl->argc, cl->argv, cl->all_short_options,
                     cl->all_long_options, NULL);
    switch (c) {
    case 'h':
      fputs (cl->command->usage, stdout);
      exit (EXIT_SUCCESS);
    case 'O':
      cl->json = parse_output (cl->command->name, optarg);
      break;
    case ':':
      usage_error (cl->command->name, "option '%s' needs an argument",
                   cl->argv[optind - 1]);
    case '?':
      unknown_option (cl->command->name, cl->argv);
    default:
      return c;
    }
  }
}

void
need_operands (const struct command_line *cl, const char *const names[],
               int n)
{
  char missing[256] = "";
  int have = cl->argc - optind, k;

  if (have >= n)
    return;
  /* "missing FILE and SIZE": every one that is not there. */
  for (k = have; k < n; k++) {
    if (k > have)
      strncat (missing, " and ", sizeof missing - strlen (missing) - 1);
    strncat (missing, names[k], sizeof missing - strlen (missing) - 1);
  }
  usage_error (cl->command->name, "missing %s", missing);
}

char **
operands (const struct command_line *cl, const char *const names[], int n)
{
  need_operands (cl, names, n);
  if (cl->argc - optind > n)
    usage_error (cl->command->name, "unexpected argument '%s'",
                 cl->argv[optind + n]);
  return &cl->argv[optind];
}

const char *
file_operand (const struct command_line *cl)
{
  static const char *const names[] = { "FILE" };

  return operands (cl, names, 1)[0];
}

/* ------------------------------------------------------------------ */
/* Images */

struct zq_image *
open_image (const char *filename, bool readonly)
{
  struct zq_open_options options = {
    .filename = filename,
    .readonly = readonly,
  };

  return zq_open (&options);
}
