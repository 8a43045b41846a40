/* zq_info (zqcow2-img info): what an image's header says, read offline
 * with the image-file reader (image-file.c).  The file is opened
 * read-only and never written; images the engine would refuse to open
 * are shown all the same, with warnings where their header is
 * inconsistent.
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "image-file.h"
#include "internal.h"
#include "qcow2-format.h"
#include "zoned-format.h"

int
zq_info (const char *filename, struct zq_info *info)
{
  struct image_file f;
  const struct qcow2_header *h = &f.h;
  char why[512];

  memset (info, 0, sizeof *info);
  if (image_file_open (&f, filename) == -1)
    return -1;

  info->version = h->version;
  info->virtual_size = h->size;
  info->cluster_size = f.cluster_size;
  info->refcount_bits = 1u << h->refcount_order;
  info->incompatible_features = h->incompatible_features;
  info->compatible_features = h->compatible_features;
  info->autoclear_features = h->autoclear_features;
  info->lazy_refcounts =
    (h->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS) != 0;
  info->compression_type = h->compression_type;
  info->dirty = (h->incompatible_features & QCOW2_INCOMPAT_DIRTY) != 0;
  info->corrupt = (h->incompatible_features & QCOW2_INCOMPAT_CORRUPT) != 0;
  info->extended_l2 = (h->incompatible_features & QCOW2_INCOMPAT_EXTL2) != 0;
  info->data_file = (h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE) != 0;
  info->nr_snapshots = h->nb_snapshots;
  info->file_size = f.file_size;
  info->disk_size = f.disk_size;
  if (h->backing_file_offset != 0)
    memcpy (info->backing_file, h->backing_file, sizeof info->backing_file);
  memcpy (info->backing_format, h->backing_format,
          sizeof info->backing_format);
  if (h->data_file_name)
    snprintf (info->data_file_name, sizeof info->data_file_name, "%s",
              h->data_file_name);
  info->data_file_raw = info->data_file &&
    (h->autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW) != 0;

  /* A zoned image carries the bit and the extension together.  A broken
   * geometry is still shown as found, with a warning: check says more.
   */
  if ((h->incompatible_features & QCOW2_INCOMPAT_ZONED) && h->has_zoned &&
      zoned_ext_parse (h->zoned_payload, h->zoned_payload_len,
                       &info->geometry, why, sizeof why) == 0) {
    char notes[ZONE_QEMU_NOTES_MAX][ZONE_QEMU_NOTE_LEN];
    unsigned i, n;

    info->zoned = true;
    if (zone_geometry_check (&info->geometry, h->size, f.cluster_size,
                             true, why, sizeof why) == -1)
      zq_warning ("%s: invalid zoned geometry: %s", filename, why);
    n = zone_geometry_qemu_notes (&info->geometry, notes);
    for (i = 0; i < n; i++)
      zq_warning ("%s: %s", filename, notes[i]);
  }
  else if ((h->incompatible_features & QCOW2_INCOMPAT_ZONED) ||
           h->has_zoned)
    zq_warning ("%s: the zoned format bit and the zoned extension do not "
                "agree, or the extension is invalid; "
                "run 'zqcow2-img check'", filename);

  image_file_close (&f);
  return 0;
}
