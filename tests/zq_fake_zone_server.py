"""A fake NBD server for the zone report tests: it publishes
qemu:zone-state with a map given as a list of (length, status) extents,
right or wrong, so that a client's handling of bad maps can be tested.

    zq_fake_zone_server.py SOCKET MAP

MAP is "LENGTH:STATUS,..." (numbers in decimal); the export is as long as
the extents add up to.  The server answers one connection on the Unix
socket SOCKET (fixed newstyle, structured replies, one metadata context)
and exits when the client disconnects.  A BLOCK_STATUS gets the extents
from its offset to its end, cut to fit."""

import os
import socket
import struct
import sys

OPT_MAGIC = 0x49484156454F5054
REP_MAGIC = 0x3E889045565A9
OPT_GO, OPT_STRUCTURED_REPLY, OPT_SET_META_CONTEXT = 7, 8, 10
REP_ACK, REP_INFO, REP_META_CONTEXT = 1, 3, 4
REP_ERR_UNSUP = 0x80000001
CONTEXT = b"qemu:zone-state"
CONTEXT_ID = 7


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data


def option_reply(conn, option, reply, data=b""):
    conn.sendall(struct.pack(">QIII", REP_MAGIC, option, reply, len(data))
                 + data)


def extents_at(extents, offset, count):
    """The extents covering [offset, offset + count), cut to fit."""
    out, pos = [], 0
    for length, status in extents:
        start, end = max(pos, offset), min(pos + length, offset + count)
        if start < end:
            out.append((end - start, status))
        pos += length
    return out


def serve(conn, extents):
    size = sum(length for length, _ in extents)
    conn.sendall(b"NBDMAGIC" + struct.pack(">QH", OPT_MAGIC, 3))
    recv_exact(conn, 4)                         # client flags
    while True:
        magic, option, length = struct.unpack(">QII", recv_exact(conn, 16))
        data = recv_exact(conn, length)
        if option == OPT_STRUCTURED_REPLY:
            option_reply(conn, option, REP_ACK)
        elif option == OPT_SET_META_CONTEXT:
            if CONTEXT in data:
                option_reply(conn, option, REP_META_CONTEXT,
                             struct.pack(">I", CONTEXT_ID) + CONTEXT)
            option_reply(conn, option, REP_ACK)
        elif option == OPT_GO:
            # NBD_INFO_EXPORT: size, flags HAS_FLAGS | READ_ONLY | SEND_DF.
            option_reply(conn, option, REP_INFO,
                         struct.pack(">HQH", 0, size, 1 | 2 | 0x80))
            option_reply(conn, option, REP_ACK)
            break
        else:
            option_reply(conn, option, REP_ERR_UNSUP)
    while True:
        magic, flags, kind, cookie, offset, count = \
            struct.unpack(">IHHQQI", recv_exact(conn, 28))
        if kind == 2:                           # NBD_CMD_DISC
            return
        if kind != 7:                           # only BLOCK_STATUS
            conn.sendall(struct.pack(">IIQ", 0x67446698, 22, cookie))
            continue
        found = extents_at(extents, offset, count)
        if flags & 8:                           # REQ_ONE
            found = found[:1]
        payload = struct.pack(">I", CONTEXT_ID) + b"".join(
            struct.pack(">II", length, status) for length, status in found)
        conn.sendall(struct.pack(">IHHQI", 0x668E33EF, 1, 5, cookie,
                                 len(payload)) + payload)


def main():
    path, spec = sys.argv[1], sys.argv[2]
    extents = [tuple(int(x) for x in item.split(":"))
               for item in spec.split(",")]
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    listener.bind(path)
    listener.listen(1)
    conn, _ = listener.accept()
    try:
        serve(conn, extents)
    finally:
        conn.close()
        listener.close()
        os.unlink(path)


if __name__ == "__main__":
    main()
