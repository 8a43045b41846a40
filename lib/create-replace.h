/* The files zq_create writes: the image, by an atomic replace of the
 * target, and the external data file.  create.c decides what goes into
 * the image; this file only knows how to put a file in place so that
 * the target is either left as it was or replaced by a whole image.
 */
#ifndef ZQCOW2_CREATE_REPLACE_H
#define ZQCOW2_CREATE_REPLACE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct replace_target {
  char *path;           /* the file replaced: the target, or the file a
                           symbolic link there points to */
  char *tmp_path;       /* the temporary file beside it, once opened */
  int fd;               /* open on tmp_path until replace_close, or -1 */
  bool exists;          /* a file at path is being replaced */
  mode_t mode;          /* its permissions, kept by the new one */
};

/* Steps in this order; filename is the name the user gave, for messages.
 * replace_prepare resolves the target (refusing one that is not a
 * regular file); replace_open creates the temporary file with the
 * target's permissions; the caller writes the image to t->fd and syncs
 * it; replace_close closes it; replace_commit renames it over the
 * target and syncs the directory.  Each logs its own error.  After a
 * failure at any step, replace_abort removes the temporary file; after
 * replace_commit it only frees.
 */
int replace_prepare (const char *filename, struct replace_target *t);
int replace_open (const char *filename, struct replace_target *t);
int replace_close (const char *filename, struct replace_target *t);
int replace_commit (const char *filename, struct replace_target *t);
void replace_abort (struct replace_target *t);

/* Whether a and b name one existing file. */
bool same_file (const char *a, const char *b);

/* Where the data file data_file of image goes (beside the image for a
 * relative name, where the engine will look for it), checked before any
 * file is touched: not the image at image_path itself, and if it
 * exists, a regular file.  Returns the path to free, or NULL (logged).
 */
char *data_file_target (const char *image, const char *data_file,
                        const char *image_path);

/* Makes the data file empty and as long as the disk, as qemu-img does:
 * an existing one loses its contents.  *created: it did not exist
 * before (and was removed again on failure).
 */
int create_data_file (const char *image, const char *data_path,
                      uint64_t size, bool *created);

#endif /* ZQCOW2_CREATE_REPLACE_H */
