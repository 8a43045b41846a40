/* Header parsing and validation on headers built in memory. */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "be.h"
#include "header.h"
#include "qcow2-format.h"
#include "unit.h"

#define CLUSTER 65536
static uint8_t buf[CLUSTER];
static char why[512];

/* A valid v3 header for a 1 GiB image with 64 KiB clusters. */
static void
make_v3 (void)
{
  memset (buf, 0, sizeof buf);
  store_be32 (buf + QH_MAGIC, QCOW2_MAGIC);
  store_be32 (buf + QH_VERSION, 3);
  store_be32 (buf + QH_CLUSTER_BITS, 16);
  store_be64 (buf + QH_SIZE, UINT64_C (1) << 30);
  store_be32 (buf + QH_L1_SIZE, 2);
  store_be64 (buf + QH_L1_TABLE_OFFSET, 3 * CLUSTER);
  store_be64 (buf + QH_REFCOUNT_TABLE_OFFSET, CLUSTER);
  store_be32 (buf + QH_REFCOUNT_TABLE_CLUSTERS, 1);
  store_be32 (buf + QH_REFCOUNT_ORDER, 4);
  store_be32 (buf + QH_HEADER_LENGTH, 112);
}

static int
parse (uint64_t file_size, struct qcow2_header *h)
{
  why[0] = '\0';
  errno = 0;
  return header_parse (buf, sizeof buf, file_size, h, why, sizeof why);
}

/* Parsing fails and the reason mentions `word`. */
static bool
refused_with (uint64_t file_size, const char *word)
{
  struct qcow2_header h;

  if (parse (file_size, &h) == 0) {
    header_free (&h);
    return false;
  }
  if (strstr (why, word) == NULL) {
    fprintf (stderr, "reason \"%s\" lacks \"%s\"\n", why, word);
    return false;
  }
  return true;
}

static size_t
add_extension (size_t pos, uint32_t magic, const void *data, uint32_t len)
{
  store_be32 (buf + pos, magic);
  store_be32 (buf + pos + 4, len);
  memcpy (buf + pos + 8, data, len);
  return pos + 8 + ((len + 7) & ~7u);
}

int
main (void)
{
  struct qcow2_header h;
  const uint64_t file_size = 4 * CLUSTER;
  uint8_t feature[48] = { 0 };
  char names[256];
  size_t pos;

  make_v3 ();
  CHECK (parse (file_size, &h) == 0);
  CHECK (h.version == 3 && h.cluster_bits == 16 && h.refcount_order == 4);
  CHECK (h.size == UINT64_C (1) << 30 && h.l1_size == 2);
  header_free (&h);

  /* Version 2: refcount order is implied, extensions start at 72. */
  make_v3 ();
  store_be32 (buf + QH_VERSION, 2);
  memset (buf + 72, 0, 40);
  CHECK (parse (file_size, &h) == 0);
  CHECK (h.refcount_order == 4 && h.header_length == 72);
  header_free (&h);

  make_v3 ();
  store_be32 (buf + QH_MAGIC, 0x12345678);
  CHECK (refused_with (file_size, "magic"));

  make_v3 ();
  CHECK (refused_with (50, "truncated"));

  make_v3 ();
  store_be32 (buf + QH_VERSION, 4);
  CHECK (refused_with (file_size, "version 4"));

  make_v3 ();
  store_be32 (buf + QH_CLUSTER_BITS, 8);
  CHECK (refused_with (file_size, "cluster_bits 8"));
  store_be32 (buf + QH_CLUSTER_BITS, 22);
  CHECK (refused_with (file_size, "cluster_bits 22"));

  make_v3 ();
  store_be32 (buf + QH_REFCOUNT_ORDER, 7);
  CHECK (refused_with (file_size, "refcount_order 7"));

  make_v3 ();
  store_be64 (buf + QH_L1_TABLE_OFFSET, 100 * CLUSTER);
  CHECK (refused_with (file_size, "L1 table"));

  make_v3 ();
  store_be64 (buf + QH_L1_TABLE_OFFSET, 3 * CLUSTER + 512);
  CHECK (refused_with (file_size, "unaligned"));

  make_v3 ();
  store_be32 (buf + QH_L1_SIZE, 1);     /* 1 GiB needs 2 entries */
  CHECK (refused_with (file_size, "too few"));

  make_v3 ();
  store_be64 (buf + QH_REFCOUNT_TABLE_OFFSET, 10 * CLUSTER);
  CHECK (refused_with (file_size, "refcount table"));

  make_v3 ();
  store_be32 (buf + QH_CRYPT_METHOD, 1);
  CHECK (refused_with (file_size, "encrypted"));

  make_v3 ();
  store_be32 (buf + QH_HEADER_LENGTH, 96);
  CHECK (refused_with (file_size, "header_length 96"));

  /* Extensions: known ones are recognised, unknown ones skipped, and the
   * feature name table names bits.
   */
  make_v3 ();
  feature[0] = 0;               /* incompatible */
  feature[1] = 20;
  memcpy (feature + 2, "frobnication", 12);
  pos = add_extension (112, 0x12345678, "abcdefghij", 10);
  pos = add_extension (pos, QCOW2_EXT_FEATURE_TABLE, feature, 48);
  pos = add_extension (pos, QCOW2_EXT_ZONED, feature, 8);
  store_be32 (buf + pos, 0);
  CHECK (parse (file_size, &h) == 0);
  CHECK (h.nr_feature_names == 1 && h.has_zoned && !h.has_data_file);
  header_describe_features (&h, 0, (UINT64_C (1) << 20) | (1u << 21),
                            names, sizeof names);
  CHECK (strcmp (names, "bit 20 (frobnication), bit 21") == 0);
  header_free (&h);

  /* The backing file name and the backing format extension. */
  make_v3 ();
  pos = add_extension (112, QCOW2_EXT_BACKING_FORMAT, "qcow2", 5);
  store_be32 (buf + pos, 0);
  memcpy (buf + 1024, "../base image.qcow2", 19);
  store_be64 (buf + QH_BACKING_FILE_OFFSET, 1024);
  store_be32 (buf + QH_BACKING_FILE_SIZE, 19);
  CHECK (parse (file_size, &h) == 0);
  CHECK (strcmp (h.backing_file, "../base image.qcow2") == 0);
  CHECK (h.has_backing_format && strcmp (h.backing_format, "qcow2") == 0);
  header_free (&h);
  /* A format name longer than the buffer is kept, truncated. */
  make_v3 ();
  pos = add_extension (112, QCOW2_EXT_BACKING_FORMAT,
                       "abcdefghijklmnopqrstuvwxyz0123456789", 36);
  store_be32 (buf + pos, 0);
  CHECK (parse (file_size, &h) == 0);
  CHECK (strcmp (h.backing_format, "abcdefghijklmnopqrstuvwxyz01234") == 0);
  header_free (&h);
  /* No backing file: empty strings. */
  make_v3 ();
  CHECK (parse (file_size, &h) == 0);
  CHECK (h.backing_file[0] == '\0' && !h.has_backing_format &&
         h.backing_format[0] == '\0');
  header_free (&h);
  /* A name with a NUL byte in it, and one past the first cluster. */
  make_v3 ();
  memcpy (buf + 1024, "a\0b", 3);
  store_be64 (buf + QH_BACKING_FILE_OFFSET, 1024);
  store_be32 (buf + QH_BACKING_FILE_SIZE, 3);
  CHECK (refused_with (file_size, "NUL"));
  make_v3 ();
  store_be64 (buf + QH_BACKING_FILE_OFFSET, CLUSTER - 4);
  store_be32 (buf + QH_BACKING_FILE_SIZE, 10);
  CHECK (refused_with (file_size, "not inside the first cluster"));

  /* An extension whose length runs past the cluster. */
  make_v3 ();
  store_be32 (buf + 112, 0x12345678);
  store_be32 (buf + 116, CLUSTER);
  CHECK (refused_with (file_size, "past the first cluster"));

  UNIT_EXIT ();
}
