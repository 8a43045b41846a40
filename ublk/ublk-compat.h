/* What zqcow2-ublk needs of the ublk uapi beyond the <linux/ublk_cmd.h>
 * of older kernel headers (Debian bookworm's are Linux 6.1's).
 *
 * The values are the kernel's ABI (include/uapi/linux/ublk_cmd.h):
 * ioctl-encoded command numbers and UBLK_F_CMD_IOCTL_ENCODE (Linux 6.3),
 * the user-copy buffer offsets and UBLK_F_USER_COPY (6.5), zoned devices
 * (UBLK_F_ZONED, zone operations, REPORT_ZONES, struct ublk_param_zoned,
 * the zone append result in place of the buffer address: 6.6).  Each is
 * defined only where the installed header lacks it.
 *
 * struct ublk_params grew with the kernel (devt in 6.2, zoned in 6.6);
 * the kernel takes any length up to its own, so zqcow2-ublk sends its
 * own copy of the 6.6 layout, struct zq_ublk_params, whatever the
 * installed header's.
 */
#ifndef ZQ_UBLK_COMPAT_H
#define ZQ_UBLK_COMPAT_H

#include <sys/ioctl.h>
#include <linux/types.h>
#include <linux/ublk_cmd.h>

#ifndef UBLK_U_CMD_ADD_DEV
#define UBLK_U_CMD_ADD_DEV    _IOWR ('u', UBLK_CMD_ADD_DEV, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_DEL_DEV    _IOWR ('u', UBLK_CMD_DEL_DEV, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_START_DEV  _IOWR ('u', UBLK_CMD_START_DEV, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_STOP_DEV   _IOWR ('u', UBLK_CMD_STOP_DEV, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_SET_PARAMS _IOWR ('u', UBLK_CMD_SET_PARAMS, struct ublksrv_ctrl_cmd)
#endif
#ifndef UBLK_U_IO_FETCH_REQ
#define UBLK_U_IO_FETCH_REQ   _IOWR ('u', UBLK_IO_FETCH_REQ, struct ublksrv_io_cmd)
#define UBLK_U_IO_COMMIT_AND_FETCH_REQ \
  _IOWR ('u', UBLK_IO_COMMIT_AND_FETCH_REQ, struct ublksrv_io_cmd)
#endif

#ifndef UBLK_F_CMD_IOCTL_ENCODE
#define UBLK_F_CMD_IOCTL_ENCODE (1ULL << 6)
#endif
#ifndef UBLK_F_USER_COPY
#define UBLK_F_USER_COPY (1ULL << 7)
#endif
#ifndef UBLK_F_ZONED
#define UBLK_F_ZONED (1ULL << 8)
#endif

/* With UBLK_F_USER_COPY, request data is read and written with pread
 * and pwrite on /dev/ublkcN at this offset: queue and tag in the high
 * bits, the byte within the request's buffer (at most 32 MiB) below.
 */
#ifndef UBLK_IO_BUF_BITS
#define UBLK_IO_BUF_BITS 25
#define UBLK_TAG_OFF     UBLK_IO_BUF_BITS
#define UBLK_TAG_BITS    16
#define UBLK_QID_OFF     (UBLK_TAG_OFF + UBLK_TAG_BITS)
#endif

#ifndef UBLK_IO_OP_ZONE_OPEN
#define UBLK_IO_OP_ZONE_OPEN      10
#define UBLK_IO_OP_ZONE_CLOSE     11
#define UBLK_IO_OP_ZONE_FINISH    12
#define UBLK_IO_OP_ZONE_APPEND    13
#define UBLK_IO_OP_ZONE_RESET_ALL 14
#define UBLK_IO_OP_ZONE_RESET     15
/* The request's nr_sectors field holds the number of zones asked for;
 * the answer is an array of struct blk_zone, ended by a zeroed entry
 * when it holds fewer.
 */
#define UBLK_IO_OP_REPORT_ZONES   18
#endif

#ifndef UBLK_PARAM_TYPE_DEVT
#define UBLK_PARAM_TYPE_DEVT  (1 << 2)
#endif
#ifndef UBLK_PARAM_TYPE_ZONED
#define UBLK_PARAM_TYPE_ZONED (1 << 3)
#endif

struct zq_ublk_param_devt {
  __u32 char_major, char_minor;
  __u32 disk_major, disk_minor;
};

struct zq_ublk_param_zoned {
  __u32 max_open_zones;
  __u32 max_active_zones;
  __u32 max_zone_append_sectors;
  __u8 reserved[20];
};

/* struct ublk_params as of Linux 6.6. */
struct zq_ublk_params {
  __u32 len;
  __u32 types;
  struct ublk_param_basic basic;
  struct ublk_param_discard discard;
  struct zq_ublk_param_devt devt;
  struct zq_ublk_param_zoned zoned;
};

/* The zone append result travels in ublksrv_io_cmd's addr field (sectors). */

#endif /* ZQ_UBLK_COMPAT_H */
