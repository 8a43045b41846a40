/* zqcow2-img: what more than one command prints the same way. */
#ifndef ZQCOW2_IMG_PRINT_H
#define ZQCOW2_IMG_PRINT_H

#include "zqcow2.h"

void json_string (const char *s);

/* A zone condition as info and zones --output=json name it. */
const char *cond_name (enum zq_zone_cond cond);

#endif /* ZQCOW2_IMG_PRINT_H */
