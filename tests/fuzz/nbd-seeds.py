"""Writes seed sessions for fuzz-nbd into the directory given: the bytes
a client sends on one connection, from the client flags to NBD_CMD_DISC.
The harness's export is named "fuzz": 8 MiB, zoned (1 MiB zones, the
first two conventional) unless FUZZ_NBD_PLAIN is set.
"""
import os
import struct
import sys

IHAVEOPT = 0x49484156454F5054
REQUEST_MAGIC = 0x25609513
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS = 1, 2, 3, 5
OPT_INFO, OPT_GO, OPT_STRUCTURED_REPLY = 6, 7, 8
OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT = 9, 10
INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE = 1, 2, 3
READ, WRITE, DISC, FLUSH, TRIM, WRITE_ZEROES, BLOCK_STATUS = (
    0, 1, 2, 3, 4, 6, 7)
FLAG_FUA, FLAG_NO_HOLE, FLAG_DF, FLAG_REQ_ONE, FLAG_FAST_ZERO = 1, 2, 4, 8, 16
NAME = b"fuzz"
ZONE = 1 << 20


def option(code, data=b""):
    return struct.pack(">QII", IHAVEOPT, code, len(data)) + data


def go(code=OPT_GO, name=NAME, infos=(INFO_NAME, INFO_DESCRIPTION,
                                       INFO_BLOCK_SIZE)):
    data = struct.pack(">I", len(name)) + name
    data += struct.pack(">H", len(infos))
    data += b"".join(struct.pack(">H", i) for i in infos)
    return option(code, data)


def meta(code, queries, name=NAME):
    data = struct.pack(">I", len(name)) + name
    data += struct.pack(">I", len(queries))
    data += b"".join(struct.pack(">I", len(q)) + q for q in queries)
    return option(code, data)


def request(cmd, offset, length, flags=0, payload=b"", cookie=1):
    return struct.pack(">IHHQQI", REQUEST_MAGIC, flags, cmd, cookie, offset,
                       length) + payload


def main(out):
    sessions = {}
    structured = (struct.pack(">I", 3) + option(OPT_STRUCTURED_REPLY) +
                  meta(OPT_SET_META_CONTEXT,
                       [b"base:allocation", b"qemu:zone-state"]) + go())
    sessions["structured-conventional"] = structured + b"".join([
        request(WRITE, 0, 4096, payload=b"\x5a" * 4096),
        request(READ, 0, 8192, FLAG_DF, cookie=2),
        request(BLOCK_STATUS, 0, 2 * ZONE, cookie=3),
        request(BLOCK_STATUS, 4096, 4096, FLAG_REQ_ONE, cookie=4),
        request(TRIM, 0, 4096, cookie=5),
        request(WRITE_ZEROES, 8192, 8192, FLAG_NO_HOLE, cookie=6),
        request(WRITE_ZEROES, 65536, 4096, FLAG_FAST_ZERO, cookie=7),
        request(FLUSH, 0, 0, cookie=8),
        request(DISC, 0, 0, cookie=9),
    ])
    sessions["structured-zones"] = structured + b"".join([
        request(WRITE, 2 * ZONE, 4096, payload=b"\x11" * 4096),
        request(WRITE, 2 * ZONE + 4096, 512, FLAG_FUA, b"\x22" * 512, 2),
        request(WRITE, 3 * ZONE, 4096, payload=b"\x33" * 4096, cookie=3),
        request(BLOCK_STATUS, 2 * ZONE, 4 * ZONE, cookie=4),
        request(READ, 2 * ZONE, 8192, cookie=5),
        request(TRIM, 3 * ZONE, ZONE, cookie=6),
        request(WRITE_ZEROES, 2 * ZONE + 4608, 512, cookie=7),
        request(FLUSH, 0, 0, cookie=8),
        request(DISC, 0, 0, cookie=9),
    ])
    sessions["oldfashioned-export-name"] = (
        struct.pack(">I", 1) + option(OPT_EXPORT_NAME, b"") + b"".join([
            request(WRITE, 4096, 1024, FLAG_FUA, b"\x44" * 1024),
            request(READ, 4096, 1024, cookie=2),
            request(BLOCK_STATUS, 0, 4096, cookie=3),
            request(99, 0, 4096, cookie=4),
            request(READ, 8 << 20, 1, cookie=5),
            request(READ, 0, 0, cookie=6),
            request(FLUSH, 0, 0, cookie=7),
        ]))
    sessions["options"] = (
        struct.pack(">I", 3) + option(OPT_LIST) + go(OPT_INFO) +
        go(OPT_INFO, b"nosuch") + option(OPT_STRUCTURED_REPLY) +
        meta(OPT_LIST_META_CONTEXT, []) +
        meta(OPT_LIST_META_CONTEXT, [b"qemu:", b"base:"]) +
        meta(OPT_LIST_META_CONTEXT, [b"qemu:zone-state"], b"") +
        option(OPT_STARTTLS) + option(77, b"junk") +
        option(OPT_LIST, b"x") + option(OPT_ABORT))
    sessions["go-then-bad-magic"] = (
        struct.pack(">I", 3) + go(infos=()) +
        request(READ, 0, 512) + b"\xde\xad\xbe\xef" + b"\0" * 24)
    for name, data in sessions.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1])
