/* On-disk constants of qcow2 (QEMU docs/interop/qcow2.txt). */
#ifndef ZQ_QCOW2_FORMAT_H
#define ZQ_QCOW2_FORMAT_H

#include <stdint.h>

#define QCOW2_MAGIC 0x514649fbu          /* "QFI\xfb" */

/* Header field offsets. */
#define QH_MAGIC                 0
#define QH_VERSION               4
#define QH_BACKING_FILE_OFFSET   8
#define QH_BACKING_FILE_SIZE     16
#define QH_CLUSTER_BITS          20
#define QH_SIZE                  24
#define QH_CRYPT_METHOD          32
#define QH_L1_SIZE               36
#define QH_L1_TABLE_OFFSET       40
#define QH_REFCOUNT_TABLE_OFFSET 48
#define QH_REFCOUNT_TABLE_CLUSTERS 56
#define QH_NB_SNAPSHOTS          60
#define QH_SNAPSHOTS_OFFSET      64
#define QH_V2_LENGTH             72
/* Version 3 only. */
#define QH_INCOMPATIBLE_FEATURES 72
#define QH_COMPATIBLE_FEATURES   80
#define QH_AUTOCLEAR_FEATURES    88
#define QH_REFCOUNT_ORDER        96
#define QH_HEADER_LENGTH         100
#define QH_V3_LENGTH             104
#define QH_COMPRESSION_TYPE      104     /* when header_length >= 112 */

/* Incompatible feature bits. */
#define QCOW2_INCOMPAT_DIRTY        (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT      (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE    (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION  (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2        (1ull << 4)
#define QCOW2_INCOMPAT_ZONED        (1ull << 5)

/* Compatible feature bits. */
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)

/* Autoclear feature bits. */
#define QCOW2_AUTOCLEAR_BITMAPS       (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ull << 1)

/* Header extension magics. */
#define QCOW2_EXT_END               0x00000000u
#define QCOW2_EXT_BACKING_FORMAT    0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE     0x6803f857u
#define QCOW2_EXT_BITMAPS           0x23852875u
#define QCOW2_EXT_CRYPTO            0x0537be77u
#define QCOW2_EXT_DATA_FILE         0x44415441u
#define QCOW2_EXT_ZONED             0x007a6264u

/* L1 and L2 entries. */
#define QCOW2_OFLAG_COPIED     (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO       (1ull << 0)
#define QCOW2_L1E_OFFSET_MASK  0x00fffffffffffe00ull
/* Extended L2 entries: 32 subclusters a cluster; the second word of an
 * entry has bit n for "subcluster n allocated" and bit 32 + n for
 * "subcluster n reads as zeroes".
 */
#define QCOW2_SUBCLUSTER_ORDER 5
#define QCOW2_SUBCLUSTERS      32
#define QCOW2_MIN_EXTL2_CLUSTER_BITS 14
#define QCOW2_L2E_OFFSET_MASK  0x00fffffffffffe00ull
/* Bits an L1 entry must not have set, besides the offset and COPIED. */
#define QCOW2_L1E_RESERVED     0x7f000000000001ffull
#define QCOW2_REFT_OFFSET_MASK 0xfffffffffffffe00ull

/* A compressed cluster's data (qcow2.txt: "Compressed Clusters
 * Descriptor"): with x = 62 - (cluster_bits - 8), bits 0..x-1 are the host
 * offset of the first byte, bits x..61 the number of 512-byte sectors it
 * occupies after the first.  The data runs from the offset to the end of
 * its last sector and may cross host cluster boundaries.
 */
static inline void
qcow2_compressed_extent (unsigned cluster_bits, uint64_t entry,
                         uint64_t *offset, uint64_t *size)
{
  unsigned shift = 62 - (cluster_bits - 8);
  uint64_t sectors_mask = (UINT64_C (1) << (cluster_bits - 8)) - 1;
  uint64_t sectors = ((entry >> shift) & sectors_mask) + 1;

  *offset = entry & ((UINT64_C (1) << shift) - 1);
  *size = sectors * 512 - (*offset & 511);
}

#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_REFCOUNT_ORDER 6

/* qemu's limits on table sizes, so that no image makes us allocate
 * absurd amounts of memory.
 */
#define QCOW2_MAX_L1_BYTES        (32u * 1024 * 1024)
#define QCOW2_MAX_REFTABLE_BYTES  (8u * 1024 * 1024)

#endif /* ZQ_QCOW2_FORMAT_H */
