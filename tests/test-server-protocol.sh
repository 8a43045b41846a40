#!/usr/bin/env bash
# zqcow2-nbd speaks the NBD protocol to the letter, checked with a raw
# socket client (no libnbd in between to smooth things over): option
# replies for unknown, malformed, oversized and misplaced options, export
# names, INFO replies, simple and structured replies, the error for each
# kind of bad request, a too-long write whose payload is consumed, a
# pipelined batch, NBD_CMD_DISC, and hanging up on a bad magic without
# disturbing other connections.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io /usr/bin/python3
: "${ZQCOW2_NBD:=$_zq_testdir/../server/zqcow2-nbd}"
[ -x "$ZQCOW2_NBD" ] || skip "zqcow2-nbd not built: $ZQCOW2_NBD"
scratch_dir

qemu-img create -q -f qcow2 -o cluster_size=64k img.qcow2 8M
qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' img.qcow2 >/dev/null

"$ZQCOW2_NBD" -e myexport --run '/usr/bin/python3 - "$unixsocket" <<EOF
import errno, socket, struct, sys
from nbd_raw import go_data, meta_data

SOCKET = sys.argv[1]
IHAVEOPT = 0x49484156454F5054
ACK, SERVER, INFO, META_CONTEXT = 1, 2, 3, 4
ERR_UNSUP, ERR_INVALID, ERR_UNKNOWN, ERR_TOO_BIG = (
    0x80000001, 0x80000003, 0x80000006, 0x80000009)
READ, WRITE, DISC, FLUSH, BLOCK_STATUS = 0, 1, 2, 3, 7
SIZE = 8 << 20

def fail(msg):
    sys.exit("FAIL: " + msg)

def recvn(s, n):
    data = b""
    while len(data) < n:
        more = s.recv(n - len(data))
        if not more:
            fail("the server closed the connection early")
        data += more
    return data

def closed(s):
    s.settimeout(5)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True

def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect(SOCKET)
    magic, opt, gflags = struct.unpack(">QQH", recvn(s, 18))
    if magic != 0x4e42444d41474943 or opt != IHAVEOPT or gflags != 3:
        fail("greeting %x %x %x" % (magic, opt, gflags))
    s.sendall(struct.pack(">I", 3))     # fixed newstyle, no zeroes
    return s

def option(s, code, data=b""):
    s.sendall(struct.pack(">QII", IHAVEOPT, code, len(data)) + data)
    replies = []
    while True:
        magic, opt, rtype, length = struct.unpack(">QIII", recvn(s, 20))
        if magic != 0x3e889045565a9 or opt != code:
            fail("option %d: reply header %x %d" % (code, magic, opt))
        replies.append((rtype, recvn(s, length)))
        if rtype == ACK or rtype & 0x80000000:
            return replies

def expect(replies, rtype, what):
    if replies[-1][0] != rtype:
        fail("%s: expected reply %x, got %r" % (what, rtype, replies))

def request(s, cmd, offset, length, flags=0, cookie=1, payload=b""):
    s.sendall(struct.pack(">IHHQQI", 0x25609513, flags, cmd, cookie,
                          offset, length) + payload)

def simple(s, cookie=1, data_len=0):
    magic, error, got = struct.unpack(">IIQ", recvn(s, 16))
    if magic != 0x67446698 or got != cookie:
        fail("simple reply %x cookie %d, expected %d" % (magic, got, cookie))
    return error, recvn(s, data_len) if error == 0 else b""

def chunk(s):
    magic, flags, ctype, cookie, length = struct.unpack(">IHHQI",
                                                        recvn(s, 20))
    if magic != 0x668e33ef:
        fail("chunk magic %x" % magic)
    return flags, ctype, cookie, recvn(s, length)

# 1. Option haggling.
s = connect()
expect(option(s, 99), ERR_UNSUP, "unknown option")
expect(option(s, 5), ERR_UNSUP, "STARTTLS")
expect(option(s, 10, meta_data(b"", b"base:allocation")), ERR_INVALID,
       "SET_META_CONTEXT before STRUCTURED_REPLY")
r = option(s, 3)
if r != [(SERVER, struct.pack(">I", 8) + b"myexport"), (ACK, b"")]:
    fail("LIST: %r" % r)
expect(option(s, 3, b"x"), ERR_INVALID, "LIST with data")
expect(option(s, 6, go_data(b"nope")), ERR_UNKNOWN, "INFO, unknown name")
expect(option(s, 6, go_data(b"myexport")[:-1]), ERR_INVALID,
       "INFO, truncated")
expect(option(s, 6, b"\0" * 70000), ERR_TOO_BIG, "a 70000-byte option")
r = dict((struct.unpack(">H", p[:2])[0], p[2:])
         for t, p in option(s, 6, go_data(b"myexport", (1, 3))) if t == INFO)
if r.get(1) != b"myexport":
    fail("INFO: NBD_INFO_NAME %r" % r.get(1))
size, eflags = struct.unpack(">QH", r[0])
# HAS_FLAGS, FLUSH, FUA, TRIM, WRITE_ZEROES, MULTI_CONN, FAST_ZERO; no DF
# before STRUCTURED_REPLY.
if size != SIZE or eflags != 0x096d:
    fail("INFO: size %d flags %x" % (size, eflags))
if struct.unpack(">III", r[3]) != (1, 65536, 32 << 20):
    fail("INFO: block sizes %r" % (struct.unpack(">III", r[3]),))

# 2. Transmission with simple replies, on the default (empty) name.
expect(option(s, 7, go_data(b"")), ACK, "GO")
request(s, READ, 4096, 512, cookie=7)
error, data = simple(s, 7, 512)
if error or data != b"\x5a" * 512:
    fail("read: error %d" % error)
for what, args, want in (
        ("read past the end", (READ, SIZE - 512, 1024), errno.EINVAL),
        ("zero-length read", (READ, 0, 0), errno.EINVAL),
        ("read of 33 MiB", (READ, 0, 33 << 20), errno.EOVERFLOW),
        ("unknown command", (42, 0, 512), errno.EINVAL),
        ("read with REQ_ONE", (READ, 0, 512, 8), errno.EINVAL),
        ("block status without a context", (BLOCK_STATUS, 0, 512),
         errno.EINVAL)):
    request(s, *args)
    error, _ = simple(s)
    if error != want:
        fail("%s: error %d, expected %d" % (what, error, want))
# The payload of a refused write must still be read off the wire.
request(s, WRITE, 0, (32 << 20) + 512, cookie=2,
        payload=b"\0" * ((32 << 20) + 512))
if simple(s, 2)[0] != errno.EOVERFLOW:
    fail("a 32 MiB + 512 write is not refused with EOVERFLOW")
# A pipelined batch: replies may come in any order.
for cookie in range(10, 18):
    request(s, WRITE, cookie << 16, 65536, cookie=cookie,
            payload=bytes([cookie]) * 65536)
request(s, FLUSH, 0, 0, cookie=18)
done = set()
for _ in range(9):
    magic, error, cookie = struct.unpack(">IIQ", recvn(s, 16))
    if error:
        fail("pipelined request %d: error %d" % (cookie, error))
    done.add(cookie)
if done != set(range(10, 19)):
    fail("pipelined replies: %r" % done)
request(s, READ, 12 << 16, 65536, cookie=3)
if simple(s, 3, 65536)[1] != bytes([12]) * 65536:
    fail("pipelined write 12 did not land")
request(s, DISC, 0, 0)
if not closed(s):
    fail("NBD_CMD_DISC did not close the connection")

# 3. Structured replies and a metadata context.  Data now ends at
# 18 << 16, after the pipelined writes.
s = connect()
expect(option(s, 8), ACK, "STRUCTURED_REPLY")
r = option(s, 10, meta_data(b"myexport", b"base:allocation", b"x-y:z"))
if len(r) != 2 or r[0][0] != META_CONTEXT or r[0][1][4:] != b"base:allocation":
    fail("SET_META_CONTEXT: %r" % r)
context_id = struct.unpack(">I", r[0][1][:4])[0]
expect(option(s, 7, go_data(b"myexport")), ACK, "GO by name")
request(s, READ, 1000, 100, cookie=4)
flags, ctype, cookie, payload = chunk(s)
if (flags, ctype, cookie) != (1, 1, 4) or payload != struct.pack(">Q", 1000) + b"\x5a" * 100:
    fail("structured read: %r" % ((flags, ctype, cookie, payload[:16]),))
request(s, READ, SIZE, 512, cookie=5)
flags, ctype, cookie, payload = chunk(s)
error, msg_len = struct.unpack(">IH", payload[:6])
if (flags, ctype, cookie, error) != (1, 0x8001, 5, errno.EINVAL) or msg_len == 0:
    fail("structured error: %r" % ((flags, ctype, cookie, payload),))
request(s, BLOCK_STATUS, 0, SIZE, cookie=6)
flags, ctype, cookie, payload = chunk(s)
if (flags, ctype, cookie) != (1, 5, 6) or \
   struct.unpack(">I", payload[:4])[0] != context_id or \
   struct.unpack(">II", payload[4:12]) != (18 << 16, 0):
    fail("block status: %r" % ((flags, ctype, cookie, payload[:20]),))

# 4. A bad request magic ends that connection, and only that one.
bad = connect()
expect(option(bad, 7, go_data(b"")), ACK, "GO")
bad.sendall(b"\x25\x60\x95\x14" + b"\0" * 24)
if not closed(bad):
    fail("a bad request magic did not end the connection")
request(s, READ, 0, 512, cookie=8)
if chunk(s)[:3] != (1, 1, 8):
    fail("another connection was disturbed by the bad one")

# 5. NBD_OPT_EXPORT_NAME with an unknown name: nothing to do but hang up.
s = connect()
s.sendall(struct.pack(">QII", IHAVEOPT, 1, 4) + b"nope")
if not closed(s):
    fail("NBD_OPT_EXPORT_NAME of an unknown export did not hang up")
s = connect()
s.sendall(struct.pack(">QII", IHAVEOPT, 1, 8) + b"myexport")
size, eflags = struct.unpack(">QH", recvn(s, 10))
if size != SIZE:
    fail("NBD_OPT_EXPORT_NAME: size %d" % size)
EOF
' img.qcow2 2>server.err || { cat server.err >&2; fail "see above"; }

# The refusals were logged, each naming the image.
grep -q 'img.qcow2: read at offset 8388096 length 1024 refused: past the end' \
    server.err || { cat server.err >&2; fail "a refusal was not logged"; }
