/* The NBD wire protocol, as far as zqcow2-nbd speaks it: fixed newstyle
 * negotiation, simple and structured replies, metadata contexts.  Names
 * and numbers follow the NBD protocol document (doc/proto.md in the NBD
 * project); every number on the wire is big-endian.
 */
#ifndef ZQ_NBD_PROTOCOL_H
#define ZQ_NBD_PROTOCOL_H

#include <stdint.h>

/* Handshake. */
#define NBD_MAGIC                 UINT64_C (0x4e42444d41474943) /* NBDMAGIC */
#define NBD_IHAVEOPT              UINT64_C (0x49484156454F5054) /* IHAVEOPT */
#define NBD_REP_MAGIC             UINT64_C (0x0003e889045565a9)

#define NBD_FLAG_FIXED_NEWSTYLE   (1u << 0)
#define NBD_FLAG_NO_ZEROES        (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES      (1u << 1)

/* Options. */
#define NBD_OPT_EXPORT_NAME       1
#define NBD_OPT_ABORT             2
#define NBD_OPT_LIST              3
#define NBD_OPT_STARTTLS          5
#define NBD_OPT_INFO              6
#define NBD_OPT_GO                7
#define NBD_OPT_STRUCTURED_REPLY  8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT  10

/* Option replies; errors have bit 31 set. */
#define NBD_REP_ACK               1
#define NBD_REP_SERVER            2
#define NBD_REP_INFO              3
#define NBD_REP_META_CONTEXT      4
#define NBD_REP_ERR_UNSUP         (UINT32_C (1) << 31 | 1)
#define NBD_REP_ERR_POLICY        (UINT32_C (1) << 31 | 2)
#define NBD_REP_ERR_INVALID       (UINT32_C (1) << 31 | 3)
#define NBD_REP_ERR_UNKNOWN       (UINT32_C (1) << 31 | 6)
#define NBD_REP_ERR_SHUTDOWN      (UINT32_C (1) << 31 | 7)
#define NBD_REP_ERR_TOO_BIG       (UINT32_C (1) << 31 | 9)

/* NBD_REP_INFO types. */
#define NBD_INFO_EXPORT           0
#define NBD_INFO_NAME             1
#define NBD_INFO_DESCRIPTION      2
#define NBD_INFO_BLOCK_SIZE       3

/* Transmission flags. */
#define NBD_FLAG_HAS_FLAGS        (1u << 0)
#define NBD_FLAG_READ_ONLY        (1u << 1)
#define NBD_FLAG_SEND_FLUSH       (1u << 2)
#define NBD_FLAG_SEND_FUA         (1u << 3)
#define NBD_FLAG_SEND_TRIM        (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF          (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN   (1u << 8)
#define NBD_FLAG_SEND_FAST_ZERO   (1u << 11)

/* Requests. */
#define NBD_REQUEST_MAGIC         UINT32_C (0x25609513)
#define NBD_REQUEST_SIZE          28

#define NBD_CMD_READ              0
#define NBD_CMD_WRITE             1
#define NBD_CMD_DISC              2
#define NBD_CMD_FLUSH             3
#define NBD_CMD_TRIM              4
#define NBD_CMD_WRITE_ZEROES      6
#define NBD_CMD_BLOCK_STATUS      7

#define NBD_CMD_FLAG_FUA          (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE      (1u << 1)
#define NBD_CMD_FLAG_DF           (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE      (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO    (1u << 4)

/* Replies. */
#define NBD_SIMPLE_REPLY_MAGIC    UINT32_C (0x67446698)
#define NBD_SIMPLE_REPLY_SIZE     16
#define NBD_STRUCTURED_REPLY_MAGIC UINT32_C (0x668e33ef)
#define NBD_STRUCTURED_REPLY_SIZE 20

#define NBD_REPLY_FLAG_DONE       (1u << 0)

#define NBD_REPLY_TYPE_NONE       0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR      ((1u << 15) | 1)

/* base:allocation extent flags. */
#define NBD_STATE_HOLE            (1u << 0)
#define NBD_STATE_ZERO            (1u << 1)

/* Errors on the wire (Linux errno numbers, but fixed by the protocol). */
#define NBD_EPERM                 1
#define NBD_EIO                   5
#define NBD_ENOMEM                12
#define NBD_EINVAL                22
#define NBD_ENOSPC                28
#define NBD_EOVERFLOW             75
#define NBD_ENOTSUP               95
#define NBD_ESHUTDOWN             108

/* Strings (export names, queries, messages) are at most this long. */
#define NBD_MAX_STRING            4096

#endif /* ZQ_NBD_PROTOCOL_H */
