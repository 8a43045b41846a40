/* The qcow2 header and its extensions: parsing, validation and
 * serialisation.
 */
#ifndef ZQ_HEADER_H
#define ZQ_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qcow2-format.h"

/* One entry of the feature name table extension. */
struct feature_name {
  uint8_t type;                 /* 0 incompatible, 1 compatible, 2 autoclear */
  uint8_t bit;
  char name[47];                /* 46 bytes on disk, NUL added */
};

struct qcow2_header {
  uint32_t version;
  uint64_t backing_file_offset;
  uint32_t backing_file_size;
  uint32_t cluster_bits;
  uint64_t size;
  uint32_t crypt_method;
  uint32_t l1_size;
  uint64_t l1_table_offset;
  uint64_t refcount_table_offset;
  uint32_t refcount_table_clusters;
  uint32_t nb_snapshots;
  uint64_t snapshots_offset;
  uint64_t incompatible_features;
  uint64_t compatible_features;
  uint64_t autoclear_features;
  uint32_t refcount_order;
  uint32_t header_length;
  uint8_t compression_type;

  /* Extensions this engine looks at.  Others are left alone on disk. */
  struct feature_name *feature_names;
  size_t nr_feature_names;
  bool has_backing_format;
  /* The backing file name (backing_file_offset/size, at most 1023 bytes)
   * and the backing format extension's value ("qcow2", "raw"), as
   * strings; empty when absent.  A format name too long for the buffer
   * is kept truncated: no format zqcow2 knows is that long.
   */
  char backing_file[1024];
  char backing_format[32];
  bool has_data_file;
  char *data_file_name;         /* the extension's name, NUL added */
  bool has_bitmaps;
  /* The bitmaps extension's directory (0 when shorter than 24 bytes). */
  uint32_t nb_bitmaps;
  uint64_t bitmap_directory_size;
  uint64_t bitmap_directory_offset;
  bool has_crypto;
  bool has_zoned;
  /* The zoned extension's payload (its first 56 bytes; longer payloads
   * keep their extra bytes on disk) and where it lies in the file.
   */
  uint8_t zoned_payload[56];
  uint32_t zoned_payload_len;
  uint64_t zoned_payload_offset;
};

/* Bytes to read from the start of the file to parse the header: the first
 * cluster, which holds the header and every extension.
 */
size_t header_bytes_needed (const uint8_t *first_bytes, size_t len);

/* Parses and validates the header in buf (len bytes from offset 0 of a
 * file of file_size bytes).  On failure returns -1 with errno set and a
 * sentence naming the field and value in why.
 */
int header_parse (const uint8_t *buf, size_t len, uint64_t file_size,
                  struct qcow2_header *h, char *why, size_t why_len);

void header_free (struct qcow2_header *h);

/* The payload of the first header extension `magic` in buf (the start of
 * the file, len bytes, whose header header_parse filled h from), its
 * length in *ext_len; NULL when the walk meets the end marker or a
 * malformed extension first.  For readers that need an extension's raw
 * bytes (the check of the bitmaps extension).
 */
const uint8_t *header_find_extension (const uint8_t *buf, size_t len,
                                      const struct qcow2_header *h,
                                      uint32_t magic, uint32_t *ext_len);

/* Bytes header_serialize writes at most: the version 3 fields and the
 * compression type with its padding.
 */
#define QH_SERIALIZED_MAX 112

/* The one writer of header fields: serialises the fields of h into buf
 * (QH_SERIALIZED_MAX bytes) at their offsets, big-endian: the version 2
 * fields, then for version 3 the feature fields, refcount_order and
 * header_length, and the compression type (with its padding) when
 * header_length has room for it.  Returns the bytes serialised.  An open
 * image changes a field by serialising a copy of its header and writing
 * only that field's bytes, so the rest of the header on disk (fields
 * this engine does not know) is left as it is.
 */
size_t header_serialize (const struct qcow2_header *h, uint8_t *buf);

/* Names the bits of mask of the given feature type ("bit 20 (foo), bit
 * 21") into out, using the feature name table where it has them.
 */
void header_describe_features (const struct qcow2_header *h, uint8_t type,
                               uint64_t mask, char *out, size_t out_len);

/* Incompatible features the engine understands: it serves them (bit 1,
 * corrupt, only read-only; bit 0, dirty, after a repair) and the check
 * reads their on-disk effects.  Any other bit refuses the image.
 */
#define ZQ_KNOWN_INCOMPATIBLE \
  (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | \
   QCOW2_INCOMPAT_DATA_FILE | QCOW2_INCOMPAT_COMPRESSION | \
   QCOW2_INCOMPAT_EXTL2 | QCOW2_INCOMPAT_ZONED)

#endif /* ZQ_HEADER_H */
