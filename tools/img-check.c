/* zqcow2-img check: the engine's read-only check of refcounts, tables
 * and write pointers, reported as qemu-img check reports it.
 */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "zqcow2.h"
#include "img-commands.h"
#include "img-print.h"
#include "img-util.h"

/* Exit statuses of check, as qemu-img check has them. */
#define CHECK_CLEAN        0
#define CHECK_INCOMPLETE   1
#define CHECK_CORRUPT      2
#define CHECK_LEAKS        3

static const char usage_check[] =
  "Usage: " PROGRAM " check [--output=human|json] FILE\n"
  "\n"
  "Check the image's refcounts, tables and write pointers, read-only.\n"
  "Exit status: 0 no problems, 2 corruptions or zone errors, 3 leaked\n"
  "clusters only, 1 the check could not be completed (also for a file\n"
  "of more than 2^31 - 1 clusters, which qemu-img check refuses too).\n";

static void
check_human (const struct zq_check_result *r)
{
  bool clean = !r->corruptions && !r->leaks && !r->wp_errors &&
               !r->check_errors;

  if (clean)
    printf ("No errors were found on the image.\n");
  if (r->corruptions)
    printf ("\n%" PRIu64 " errors were found on the image.\n"
            "Data may be corrupted, or further writes to the image may "
            "corrupt it.\n", r->corruptions);
  if (r->wp_errors)
    printf ("\n%" PRIu64 " zone errors were found on the image.\n"
            "zqcow2 will not open the image read-write until they are "
            "repaired.\n", r->wp_errors);
  if (r->leaks)
    printf ("\n%" PRIu64 " leaked clusters were found on the image.\n"
            "This means waste of disk space, but no harm to data.\n",
            r->leaks);
  if (r->check_errors)
    printf ("\n%" PRIu64 " internal errors have occurred during the "
            "check.\n", r->check_errors);
  if (r->total_clusters && r->allocated_clusters)
    printf ("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% "
            "fragmented, %0.2f%% compressed clusters\n",
            r->allocated_clusters, r->total_clusters,
            r->allocated_clusters * 100.0 / r->total_clusters,
            r->fragmented_clusters * 100.0 / r->allocated_clusters,
            r->compressed_clusters * 100.0 / r->allocated_clusters);
  if (r->image_end_offset)
    printf ("Image end offset: %" PRIu64 "\n", r->image_end_offset);
}

static void
check_json (const char *filename, const struct zq_check_result *r)
{
  printf ("{\n");
  printf ("    \"filename\": ");
  json_string (filename);
  printf (",\n");
  printf ("    \"format\": \"qcow2\",\n");
  printf ("    \"check-errors\": %" PRIu64 ",\n", r->check_errors);
  printf ("    \"corruptions\": %" PRIu64 ",\n", r->corruptions);
  printf ("    \"leaks\": %" PRIu64 ",\n", r->leaks);
  printf ("    \"zone-errors\": %" PRIu64 ",\n", r->wp_errors);
  printf ("    \"total-clusters\": %" PRIu64 ",\n", r->total_clusters);
  printf ("    \"allocated-clusters\": %" PRIu64 ",\n",
          r->allocated_clusters);
  printf ("    \"fragmented-clusters\": %" PRIu64 ",\n",
          r->fragmented_clusters);
  printf ("    \"compressed-clusters\": %" PRIu64 ",\n",
          r->compressed_clusters);
  printf ("    \"image-end-offset\": %" PRIu64 "\n", r->image_end_offset);
  printf ("}\n");
}

static int
cmd_check (struct command_line *cl)
{
  struct zq_check_result result;
  const char *filename;

  /* It has no options of its own. */
  while (next_option (cl) != -1)
    ;
  filename = file_operand (cl);

  if (zq_check (filename, &result) == -1) {
    error ("%s: the check could not be completed", filename);
    return CHECK_INCOMPLETE;
  }
  fflush (stderr);
  if (cl->json)
    check_json (filename, &result);
  else
    check_human (&result);
  if (result.check_errors)
    return CHECK_INCOMPLETE;
  if (result.corruptions || result.wp_errors)
    return CHECK_CORRUPT;
  if (result.leaks)
    return CHECK_LEAKS;
  return CHECK_CLEAN;
}

const struct command check_command = {
  .name = "check", .run = cmd_check, .usage = usage_check, .output = true,
};
