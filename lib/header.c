/* Parsing and validating the qcow2 header and its extensions, and
 * serialising the header fields (header_serialize, the one writer every
 * place that writes header fields goes through).
 *
 * Everything here works on a buffer holding the start of the file, so it
 * is easy to test without a file.  The checks are the ones an image must
 * pass before the engine trusts any offset in it.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "qcow2-format.h"
#include "header.h"

#define REFUSE(err, ...)                                \
  do {                                                  \
    snprintf (why, why_len, __VA_ARGS__);               \
    errno = (err);                                      \
    return -1;                                          \
  } while (0)

size_t
header_bytes_needed (const uint8_t *first_bytes, size_t len)
{
  uint32_t cluster_bits;

  if (len < QH_CLUSTER_BITS + 4)
    return QH_V3_LENGTH;
  cluster_bits = load_be32 (first_bytes + QH_CLUSTER_BITS);
  if (cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
      cluster_bits > QCOW2_MAX_CLUSTER_BITS)
    return QH_V3_LENGTH;        /* header_parse will say why */
  return (size_t) 1 << cluster_bits;
}

static int
parse_feature_table (struct qcow2_header *h, const uint8_t *data,
                     uint32_t len)
{
  size_t n = len / 48, i;

  h->feature_names = calloc (n ? n : 1, sizeof *h->feature_names);
  if (h->feature_names == NULL)
    return -1;
  for (i = 0; i < n; i++) {
    struct feature_name *f = &h->feature_names[i];
    f->type = data[i * 48];
    f->bit = data[i * 48 + 1];
    memcpy (f->name, &data[i * 48 + 2], 46);
    f->name[46] = '\0';
  }
  h->nr_feature_names = n;
  return 0;
}

/* What ext_at found at a position of the extension area. */
enum ext_found {
  EXT_ONE,                      /* an extension, its payload inside len */
  EXT_END,                      /* the end marker */
  EXT_NO_ROOM,                  /* no room for an extension header */
  EXT_TOO_LONG,                 /* the payload runs past len */
};

/* The one walk of the extension area, so header_parse and
 * header_find_extension agree on where each extension starts and what
 * ends the walk.  Reads the extension header at pos.
 */
static enum ext_found
ext_at (const uint8_t *buf, size_t len, size_t pos, uint32_t *magic,
        uint32_t *ext_len)
{
  if (pos + 8 > len)
    return EXT_NO_ROOM;
  *magic = load_be32 (buf + pos);
  *ext_len = load_be32 (buf + pos + 4);
  if (*magic == QCOW2_EXT_END)
    return EXT_END;
  if (*ext_len > len - pos - 8)
    return EXT_TOO_LONG;
  return EXT_ONE;
}

/* Where the extension after the one at pos (of ext_len bytes) starts:
 * payloads are padded to 8 bytes.
 */
static size_t
ext_next (size_t pos, uint32_t ext_len)
{
  return pos + 8 + (((uint64_t) ext_len + 7) & ~(uint64_t) 7);
}

/* Walks the header extensions from ext_start to the end marker. */
static int
parse_extensions (struct qcow2_header *h, const uint8_t *buf, size_t len,
                  size_t ext_start, char *why, size_t why_len)
{
  size_t pos = ext_start;

  for (;;) {
    uint32_t magic = 0, ext_len = 0;

    switch (ext_at (buf, len, pos, &magic, &ext_len)) {
    case EXT_ONE: break;
    case EXT_END: return 0;
    case EXT_NO_ROOM:
      REFUSE (EINVAL, "header extension at byte %zu runs past the first "
              "cluster (%zu bytes) without an end marker", pos, len);
    case EXT_TOO_LONG:
      REFUSE (EINVAL, "header extension 0x%08" PRIx32 " at byte %zu has "
              "length %" PRIu32 ", past the first cluster",
              magic, pos, ext_len);
    }

    switch (magic) {
    case QCOW2_EXT_FEATURE_TABLE:
      if (h->feature_names == NULL &&
          parse_feature_table (h, buf + pos + 8, ext_len) == -1)
        REFUSE (ENOMEM, "out of memory reading the feature name table");
      break;
    case QCOW2_EXT_BACKING_FORMAT: {
      size_t n = ext_len < sizeof h->backing_format - 1 ?
                 ext_len : sizeof h->backing_format - 1;
      h->has_backing_format = true;
      memcpy (h->backing_format, buf + pos + 8, n);
      h->backing_format[n] = '\0';
      break;
    }
    case QCOW2_EXT_DATA_FILE:
      h->has_data_file = true;
      free (h->data_file_name);
      h->data_file_name = strndup ((const char *) buf + pos + 8, ext_len);
      if (h->data_file_name == NULL)
        REFUSE (ENOMEM, "out of memory reading the data file name");
      break;
    case QCOW2_EXT_BITMAPS:
      h->has_bitmaps = true;
      if (ext_len >= 24) {
        h->nb_bitmaps = load_be32 (buf + pos + 8);
        h->bitmap_directory_size = load_be64 (buf + pos + 8 + 8);
        h->bitmap_directory_offset = load_be64 (buf + pos + 8 + 16);
      }
      break;
    case QCOW2_EXT_CRYPTO: h->has_crypto = true; break;
    case QCOW2_EXT_ZONED:
      h->has_zoned = true;
      h->zoned_payload_len = ext_len;
      h->zoned_payload_offset = pos + 8;
      memcpy (h->zoned_payload, buf + pos + 8,
              ext_len < sizeof h->zoned_payload ?
              ext_len : sizeof h->zoned_payload);
      break;
    default: break;             /* unknown: ignored, kept on disk */
    }
    pos = ext_next (pos, ext_len);
  }
}

/* A table of `bytes` bytes at `offset` must be cluster-aligned and lie
 * inside the file.
 */
static bool
table_in_file (uint64_t offset, uint64_t bytes, uint64_t cluster_size,
               uint64_t file_size)
{
  return (offset & (cluster_size - 1)) == 0 &&
         offset <= file_size && bytes <= file_size - offset;
}

int
header_parse (const uint8_t *buf, size_t len, uint64_t file_size,
              struct qcow2_header *h, char *why, size_t why_len)
{
  uint64_t cluster_size, l2_coverage, l1_needed;
  size_t ext_start;

  memset (h, 0, sizeof *h);

  if (file_size < QH_V2_LENGTH || len < QH_V2_LENGTH)
    REFUSE (EINVAL, "file is %" PRIu64 " bytes, too short for a qcow2 "
            "header (truncated header)", file_size);
  if (load_be32 (buf + QH_MAGIC) != QCOW2_MAGIC)
    REFUSE (EINVAL, "not a qcow2 image: bad magic 0x%08" PRIx32
            " (expected 0x%08x)", load_be32 (buf + QH_MAGIC), QCOW2_MAGIC);

  h->version = load_be32 (buf + QH_VERSION);
  if (h->version != 2 && h->version != 3)
    REFUSE (ENOTSUP, "qcow2 version %" PRIu32 " is not supported "
            "(only 2 and 3)", h->version);

  h->backing_file_offset = load_be64 (buf + QH_BACKING_FILE_OFFSET);
  h->backing_file_size = load_be32 (buf + QH_BACKING_FILE_SIZE);
  h->cluster_bits = load_be32 (buf + QH_CLUSTER_BITS);
  h->size = load_be64 (buf + QH_SIZE);
  h->crypt_method = load_be32 (buf + QH_CRYPT_METHOD);
  h->l1_size = load_be32 (buf + QH_L1_SIZE);
  h->l1_table_offset = load_be64 (buf + QH_L1_TABLE_OFFSET);
  h->refcount_table_offset = load_be64 (buf + QH_REFCOUNT_TABLE_OFFSET);
  h->refcount_table_clusters = load_be32 (buf + QH_REFCOUNT_TABLE_CLUSTERS);
  h->nb_snapshots = load_be32 (buf + QH_NB_SNAPSHOTS);
  h->snapshots_offset = load_be64 (buf + QH_SNAPSHOTS_OFFSET);

  if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
      h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
    REFUSE (EINVAL, "cluster_bits %" PRIu32 " is out of range "
            "(%d to %d: cluster size 512 bytes to 2 MiB)",
            h->cluster_bits, QCOW2_MIN_CLUSTER_BITS, QCOW2_MAX_CLUSTER_BITS);
  cluster_size = UINT64_C (1) << h->cluster_bits;

  if (h->version == 2) {
    h->header_length = QH_V2_LENGTH;
    h->refcount_order = 4;
  }
  else {
    if (len < QH_V3_LENGTH || file_size < QH_V3_LENGTH)
      REFUSE (EINVAL, "file is %" PRIu64 " bytes, too short for a qcow2 "
              "version 3 header (truncated header)", file_size);
    h->incompatible_features = load_be64 (buf + QH_INCOMPATIBLE_FEATURES);
    h->compatible_features = load_be64 (buf + QH_COMPATIBLE_FEATURES);
    h->autoclear_features = load_be64 (buf + QH_AUTOCLEAR_FEATURES);
    h->refcount_order = load_be32 (buf + QH_REFCOUNT_ORDER);
    h->header_length = load_be32 (buf + QH_HEADER_LENGTH);
    if (h->header_length < QH_V3_LENGTH || h->header_length > cluster_size)
      REFUSE (EINVAL, "header_length %" PRIu32 " is out of range "
              "(%d to the cluster size %" PRIu64 ")",
              h->header_length, QH_V3_LENGTH, cluster_size);
    if (h->refcount_order > QCOW2_MAX_REFCOUNT_ORDER)
      REFUSE (EINVAL, "refcount_order %" PRIu32 " is out of range "
              "(0 to %d)", h->refcount_order, QCOW2_MAX_REFCOUNT_ORDER);
    if (h->header_length > QH_COMPRESSION_TYPE)
      h->compression_type = buf[QH_COMPRESSION_TYPE];
  }
  if (len < cluster_size && file_size >= cluster_size)
    REFUSE (EINVAL, "internal error: header buffer is shorter than "
            "the first cluster");
  if (len > cluster_size)
    len = cluster_size;

  if (h->crypt_method != 0)
    REFUSE (ENOTSUP, "encrypted images are not supported "
            "(crypt_method %" PRIu32 ")", h->crypt_method);
  if (h->size > (UINT64_C (1) << 62))
    REFUSE (EINVAL, "virtual size %" PRIu64 " is too large", h->size);

  /* The L1 table must cover the virtual size and lie inside the file. */
  l2_coverage = cluster_size * (cluster_size / 8);
  l1_needed = (h->size + l2_coverage - 1) / l2_coverage;
  if (h->l1_size < l1_needed)
    REFUSE (EINVAL, "L1 table has %" PRIu32 " entries, too few for the "
            "virtual size %" PRIu64 " (needs %" PRIu64 ")",
            h->l1_size, h->size, l1_needed);
  if ((uint64_t) h->l1_size * 8 > QCOW2_MAX_L1_BYTES)
    REFUSE (EFBIG, "L1 table of %" PRIu32 " entries is too large",
            h->l1_size);
  if (h->l1_size > 0 &&
      !table_in_file (h->l1_table_offset, (uint64_t) h->l1_size * 8,
                      cluster_size, file_size))
    REFUSE (EINVAL, "L1 table at offset 0x%" PRIx64 " (%" PRIu32
            " entries) is unaligned or beyond the end of the file "
            "(%" PRIu64 " bytes)", h->l1_table_offset, h->l1_size,
            file_size);

  if (h->refcount_table_clusters == 0 ||
      (uint64_t) h->refcount_table_clusters * cluster_size >
      QCOW2_MAX_REFTABLE_BYTES)
    REFUSE (EINVAL, "refcount_table_clusters %" PRIu32 " is out of range",
            h->refcount_table_clusters);
  if (!table_in_file (h->refcount_table_offset,
                      (uint64_t) h->refcount_table_clusters * cluster_size,
                      cluster_size, file_size))
    REFUSE (EINVAL, "refcount table at offset 0x%" PRIx64 " (%" PRIu32
            " clusters) is unaligned or beyond the end of the file "
            "(%" PRIu64 " bytes)", h->refcount_table_offset,
            h->refcount_table_clusters, file_size);

  if (h->nb_snapshots > 0 &&
      (h->snapshots_offset & (cluster_size - 1)) != 0)
    REFUSE (EINVAL, "snapshot table offset 0x%" PRIx64 " is unaligned",
            h->snapshots_offset);

  if (h->backing_file_offset != 0 &&
      (h->backing_file_offset > len ||
       h->backing_file_size > len - h->backing_file_offset ||
       h->backing_file_size > 1023))
    REFUSE (EINVAL, "backing file name at offset %" PRIu64 " (%" PRIu32
            " bytes) is not inside the first cluster",
            h->backing_file_offset, h->backing_file_size);
  if (h->backing_file_offset != 0) {
    memcpy (h->backing_file, buf + h->backing_file_offset,
            h->backing_file_size);
    h->backing_file[h->backing_file_size] = '\0';
    if (strlen (h->backing_file) != h->backing_file_size)
      REFUSE (EINVAL, "backing file name at offset %" PRIu64 " (%" PRIu32
              " bytes) contains a NUL byte", h->backing_file_offset,
              h->backing_file_size);
  }

  ext_start = h->version == 2 ? QH_V2_LENGTH : h->header_length;
  if (ext_start < len &&
      parse_extensions (h, buf, len, ext_start, why, why_len) == -1) {
    header_free (h);
    return -1;
  }
  return 0;
}

const uint8_t *
header_find_extension (const uint8_t *buf, size_t len,
                       const struct qcow2_header *h, uint32_t magic,
                       uint32_t *ext_len)
{
  size_t pos = h->version == 2 ? QH_V2_LENGTH : h->header_length;
  size_t cluster_size = (size_t) 1 << h->cluster_bits;
  size_t end = len < cluster_size ? len : cluster_size;
  uint32_t m, l;

  while (ext_at (buf, end, pos, &m, &l) == EXT_ONE) {
    if (m == magic) {
      *ext_len = l;
      return buf + pos + 8;
    }
    pos = ext_next (pos, l);
  }
  return NULL;
}

size_t
header_serialize (const struct qcow2_header *h, uint8_t *buf)
{
  store_be32 (buf + QH_MAGIC, QCOW2_MAGIC);
  store_be32 (buf + QH_VERSION, h->version);
  store_be64 (buf + QH_BACKING_FILE_OFFSET, h->backing_file_offset);
  store_be32 (buf + QH_BACKING_FILE_SIZE, h->backing_file_size);
  store_be32 (buf + QH_CLUSTER_BITS, h->cluster_bits);
  store_be64 (buf + QH_SIZE, h->size);
  store_be32 (buf + QH_CRYPT_METHOD, h->crypt_method);
  store_be32 (buf + QH_L1_SIZE, h->l1_size);
  store_be64 (buf + QH_L1_TABLE_OFFSET, h->l1_table_offset);
  store_be64 (buf + QH_REFCOUNT_TABLE_OFFSET, h->refcount_table_offset);
  store_be32 (buf + QH_REFCOUNT_TABLE_CLUSTERS, h->refcount_table_clusters);
  store_be32 (buf + QH_NB_SNAPSHOTS, h->nb_snapshots);
  store_be64 (buf + QH_SNAPSHOTS_OFFSET, h->snapshots_offset);
  if (h->version < 3)
    return QH_V2_LENGTH;
  store_be64 (buf + QH_INCOMPATIBLE_FEATURES, h->incompatible_features);
  store_be64 (buf + QH_COMPATIBLE_FEATURES, h->compatible_features);
  store_be64 (buf + QH_AUTOCLEAR_FEATURES, h->autoclear_features);
  store_be32 (buf + QH_REFCOUNT_ORDER, h->refcount_order);
  store_be32 (buf + QH_HEADER_LENGTH, h->header_length);
  if (h->header_length < QH_SERIALIZED_MAX)
    return QH_V3_LENGTH;
  buf[QH_COMPRESSION_TYPE] = h->compression_type;
  memset (buf + QH_COMPRESSION_TYPE + 1, 0,
          QH_SERIALIZED_MAX - QH_COMPRESSION_TYPE - 1);
  return QH_SERIALIZED_MAX;
}

void
header_free (struct qcow2_header *h)
{
  free (h->feature_names);
  h->feature_names = NULL;
  free (h->data_file_name);
  h->data_file_name = NULL;
  h->nr_feature_names = 0;
}

void
header_describe_features (const struct qcow2_header *h, uint8_t type,
                          uint64_t mask, char *out, size_t out_len)
{
  size_t used = 0;
  unsigned bit;

  out[0] = '\0';
  for (bit = 0; bit < 64; bit++) {
    const char *name = NULL;
    size_t i;
    int n;

    if (!(mask & (UINT64_C (1) << bit)))
      continue;
    for (i = 0; i < h->nr_feature_names; i++)
      if (h->feature_names[i].type == type && h->feature_names[i].bit == bit)
        name = h->feature_names[i].name;
    if (name && name[0])
      n = snprintf (out + used, out_len - used, "%sbit %u (%s)",
                    used ? ", " : "", bit, name);
    else
      n = snprintf (out + used, out_len - used, "%sbit %u",
                    used ? ", " : "", bit);
    if (n < 0 || (size_t) n >= out_len - used)
      return;
    used += n;
  }
}
