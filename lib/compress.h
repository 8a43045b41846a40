/* Compressed clusters: reading them (zlib raw deflate or zstd, as the
 * header's compression_type says).  zqcow2 never writes one: a write into
 * a compressed cluster turns it into a normal cluster (io-write.c).
 */
#ifndef ZQ_COMPRESS_H
#define ZQ_COMPRESS_H

#include <stdint.h>

#include "internal.h"

#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/* Decompresses the cluster whose L2 entry is `entry` (the guest cluster
 * holding guest_offset, named in messages) into a buffer of the calling
 * thread; *cluster points at its cluster_size bytes until the thread's
 * next call.  -1 with errno EIO (logged) if the data is corrupt or cannot
 * be read, ENOMEM if the thread's buffers cannot be allocated.
 */
int decompress_cluster (struct zq_image *img, uint64_t entry,
                        uint64_t guest_offset, const uint8_t **cluster);

#endif /* ZQ_COMPRESS_H */
