/* The files zq_create writes (create-replace.h): the image put in
 * place by renaming a complete, synced temporary file over the target,
 * and the external data file.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "create-replace.h"
#include "internal.h"

/* Logs "FILE: message" and fails with EINVAL. */
#define refuse(filename, ...) zq_refuse ((filename), EINVAL, __VA_ARGS__)

/* The file to write: the target itself, or the file a symbolic link
 * points to, so that the link is kept.  Refuses targets that are not
 * regular files.  *exists tells whether there is a file to replace,
 * and *mode its permissions.
 */
static char *
resolve_target (const char *filename, mode_t *mode, bool *exists)
{
  struct stat st;
  char *path;

  *exists = false;
  if (stat (filename, &st) == 0) {
    if (!S_ISREG (st.st_mode)) {
      refuse (filename, "%s", "exists and is not a regular file; "
              "zqcow2-img only creates images in regular files");
      return NULL;
    }
    *exists = true;
    *mode = st.st_mode & 07777;
    path = realpath (filename, NULL);
  }
  else
    path = strdup (filename);
  if (path == NULL)
    zq_error ("%s: %s", filename, strerror (errno));
  return path;
}

/* Opens a new temporary file next to path. */
static int
open_temporary (const char *path, char **tmp_path)
{
  char *copy_dir = strdup (path), *copy_base = strdup (path);
  unsigned attempt;
  int fd = -1;

  *tmp_path = NULL;
  if (copy_dir == NULL || copy_base == NULL)
    goto out;
  for (attempt = 0; attempt < 100; attempt++) {
    free (*tmp_path);
    if (asprintf (tmp_path, "%s/.%s.zqcow2-%ld-%u", dirname (copy_dir),
                  basename (copy_base), (long) getpid (), attempt) == -1) {
      *tmp_path = NULL;
      goto out;
    }
    /* Mode 0666 less the umask, as for any new file. */
    fd = open (*tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST)
      break;
    /* dirname and basename may have modified the copies. */
    strcpy (copy_dir, path);
    strcpy (copy_base, path);
  }
 out:
  if (fd == -1) {
    int saved_errno = errno ? errno : ENOMEM;
    zq_error ("%s: creating a temporary file beside it: %s", path,
              strerror (saved_errno));
    free (*tmp_path);
    *tmp_path = NULL;
    errno = saved_errno;
  }
  free (copy_dir);
  free (copy_base);
  return fd;
}

/* Syncs the directory holding path, so that the rename is durable. */
static int
sync_parent (const char *path)
{
  char *copy = strdup (path);
  int fd, r = 0;

  if (copy == NULL)
    return -1;
  fd = open (dirname (copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1 || fsync (fd) == -1)
    r = -1;
  if (fd >= 0)
    close (fd);
  free (copy);
  return r;
}

bool
same_file (const char *a, const char *b)
{
  struct stat sa, sb;

  return stat (a, &sa) == 0 && stat (b, &sb) == 0 &&
         sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

char *
data_file_target (const char *image, const char *data_file,
                  const char *image_path)
{
  char *data_path = name_beside_image (image, data_file);
  struct stat st;

  if (data_path == NULL) {
    zq_error ("%s: out of memory", image);
    return NULL;
  }
  if (same_file (image_path, data_path))
    refuse (image, "data_file %s is the image itself", data_path);
  else if (stat (data_path, &st) == 0 && !S_ISREG (st.st_mode))
    refuse (image, "data_file %s exists and is not a regular file",
            data_path);
  else
    return data_path;
  free (data_path);
  return NULL;
}

int
create_data_file (const char *image, const char *data_path, uint64_t size,
                  bool *created)
{
  int fd, saved_errno;

  fd = open (data_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  *created = fd >= 0;
  if (fd == -1 && errno == EEXIST)
    fd = open (data_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd == -1 || ftruncate (fd, size) == -1 || fsync (fd) == -1)
    goto fail;
  if (close (fd) == -1) {
    fd = -1;
    goto fail;
  }
  if (*created && sync_parent (data_path) == -1)
    zq_warning ("%s: syncing the directory of %s: %s", image, data_path,
                strerror (errno));
  return 0;

 fail:
  saved_errno = errno;
  zq_error ("%s: external data file %s: %s", image, data_path,
            strerror (saved_errno));
  if (fd >= 0)
    close (fd);
  if (*created)
    unlink (data_path);
  *created = false;
  errno = saved_errno;
  return -1;
}

int
replace_prepare (const char *filename, struct replace_target *t)
{
  *t = (struct replace_target) { .fd = -1 };
  t->path = resolve_target (filename, &t->mode, &t->exists);
  return t->path ? 0 : -1;
}

int
replace_open (const char *filename, struct replace_target *t)
{
  t->fd = open_temporary (t->path, &t->tmp_path);
  if (t->fd == -1)
    return -1;
  /* Replacing a file keeps its permissions (not its owner). */
  if (t->exists && fchmod (t->fd, t->mode) == -1) {
    zq_error ("%s: setting the permissions of %s: %s", filename,
              t->tmp_path, strerror (errno));
    return -1;
  }
  return 0;
}

int
replace_close (const char *filename, struct replace_target *t)
{
  int fd = t->fd;

  t->fd = -1;
  if (close (fd) == -1) {
    zq_error ("%s: closing %s: %s", filename, t->tmp_path, strerror (errno));
    return -1;
  }
  return 0;
}

int
replace_commit (const char *filename, struct replace_target *t)
{
  if (rename (t->tmp_path, t->path) == -1) {
    zq_error ("%s: renaming %s to it: %s", filename, t->tmp_path,
              strerror (errno));
    return -1;
  }
  free (t->tmp_path);
  t->tmp_path = NULL;
  if (sync_parent (t->path) == -1) {
    /* The image is complete; only the rename may not be durable yet. */
    zq_warning ("%s: syncing its directory: %s", filename, strerror (errno));
  }
  return 0;
}

void
replace_abort (struct replace_target *t)
{
  int saved_errno = errno;

  if (t->fd >= 0)
    close (t->fd);
  if (t->tmp_path)
    unlink (t->tmp_path);
  free (t->tmp_path);
  free (t->path);
  *t = (struct replace_target) { .fd = -1 };
  errno = saved_errno;
}
