/* zqcow2-img: the commands, one file each. */
#ifndef ZQCOW2_IMG_COMMANDS_H
#define ZQCOW2_IMG_COMMANDS_H

#include "img-util.h"

extern const struct command create_command;     /* img-create.c */
extern const struct command info_command;       /* img-info.c */
extern const struct command check_command;      /* img-check.c */
extern const struct command zones_command;      /* img-zones.c */
extern const struct command zone_command;       /* img-zones.c */

#endif /* ZQCOW2_IMG_COMMANDS_H */
