/* zqcow2-img: what the commands share: messages, parsing values, and the
 * command line every command has (--help, getopt's errors, operands).
 */
#ifndef ZQCOW2_IMG_UTIL_H
#define ZQCOW2_IMG_UTIL_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "zqcow2.h"

#define PROGRAM "zqcow2-img"

/* Messages */

extern bool verbose;            /* show the engine's debug messages */

void log_to_stderr (enum zq_log_level level, const char *message);

void error (const char *fs, ...)
  __attribute__ ((format (printf, 1, 2)));

/* A usage error in a command: say what, point at the help, exit 1. */
void usage_error (const char *command, const char *fs, ...)
  __attribute__ ((format (printf, 2, 3), noreturn));

/* Values */

bool parse_size (const char *s, uint64_t *out);
bool parse_number (const char *s, uint64_t max, uint64_t *out);
bool parse_bool (const char *s, bool *out);

/* A command, and what it takes on its command line beyond --help, which
 * every command takes.  'h' and 'O' (--output) are not free for its own
 * options.
 */
struct command_line;
struct command {
  const char *name;             /* "zones": what selects it, in messages */
  int (*run) (struct command_line *cl); /* returns the exit status */
  const char *usage;            /* what --help prints */
  const char *short_options;    /* its own options, in getopt's syntax */
  const struct option *long_options; /* its own, ended by a zeroed entry, or NULL */
  bool output;                  /* it takes --output=human|json */
  bool options_first;           /* options stop at the first operand */
};

/* One run of a command: its arguments, from its own name as argv[0].
 * next_option and operands handle all that every command shares, and
 * exit on every error.
 */
struct command_line {
  const struct command *command;
  int argc;
  char **argv;

  bool json;                    /* --output=json was given */

  /* getopt's tables: the shared options, then the command's own. */
  char all_short_options[32];
  struct option all_long_options[8];
};

/* The next of the command's own options, as getopt_long returns it, or
 * -1 after the last option.  --help prints the usage and exits 0.
 */
int next_option (struct command_line *cl);

/* The operands after the options, which must be exactly n, named in
 * names[] for the messages.  Returns the first.
 */
char **operands (const struct command_line *cl, const char *const names[],
                 int n);

/* Only the first n of names[] must be there; more may follow. */
void need_operands (const struct command_line *cl, const char *const names[],
                    int n);

/* The one operand of commands that take just FILE. */
const char *file_operand (const struct command_line *cl);

/* Images */

struct zq_image *open_image (const char *filename, bool readonly);

#endif /* ZQCOW2_IMG_UTIL_H */
