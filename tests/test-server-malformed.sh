#!/usr/bin/env bash
# zqcow2-nbd survives hostile traffic.  A raw-socket client (nbd_raw.py)
# sends, each on a connection of its own: unknown client flags, bad option
# and request magic, unknown options and commands, STARTTLS, option data
# and export and context names far too long or claiming lengths past
# their data, requests past the end and with offset + length overflowing
# 2^64, oversized and truncated writes, truncated headers, and random
# bytes during negotiation and after a valid handshake.  After each, the
# server must still be running, and a well-behaved client (libnbd) on
# another connection must write and read back its own data and the data
# written at the start, while idle half-negotiated connections stay open.
# Then SIGTERM must stop the server cleanly and qemu-img check find the
# image clean, with what libnbd wrote in it.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io /usr/bin/python3
requires_run /usr/bin/python3 -c 'import nbd'
: "${ZQCOW2_NBD:=$_zq_testdir/../server/zqcow2-nbd}"
[ -x "$ZQCOW2_NBD" ] || skip "zqcow2-nbd not built: $ZQCOW2_NBD"
scratch_dir

qemu-img create -q -f qcow2 -o cluster_size=4k img.qcow2 8M
qemu-io -f qcow2 -c 'write -P 0x5a 0 64k' img.qcow2 >/dev/null

sock="$SCRATCH/nbd.sock"
"$ZQCOW2_NBD" -U "$sock" -e good img.qcow2 2> server.log &
server=$!
stop_server () { kill -9 "$server" 2>/dev/null || true; }
cleanup_fn stop_server
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || fail "the server did not start: $(cat server.log)"

/usr/bin/python3 - "$sock" "$server" <<'EOF_PY' || fail "see above"
import errno, os, random, socket, struct, sys
import nbd
from nbd_raw import *

SOCKET, PID = sys.argv[1], int(sys.argv[2])
SIZE = 8 << 20
step = 0

def fail(msg):
    sys.exit("FAIL: step %d: %s" % (step, msg))

def healthy(what):
    """The server lives, and another client reads and writes correctly."""
    global step
    step += 1
    try:
        os.kill(PID, 0)
    except ProcessLookupError:
        fail("the server died after: " + what)
    h = nbd.NBD()
    h.set_export_name("good")
    h.connect_unix(SOCKET)
    if h.pread(4096, 0) != b"\x5a" * 4096:
        fail("the data written at the start changed after: " + what)
    offset = (1 << 20) + step * 8192
    data = struct.pack(">I", step) * 1024
    h.pwrite(data, offset)
    h.flush()
    if h.pread(4096, offset) != data:
        fail("a write did not read back after: " + what)
    h.shutdown()

def hangs_up(raw, what):
    if not raw.closed():
        fail("the server did not hang up on " + what)
    raw.close()

def transmission(name=b"good", structured=False):
    raw = Raw(SOCKET)
    raw.greeting()
    if structured and raw.option(OPT_STRUCTURED_REPLY)[-1][0] != REP_ACK:
        fail("STRUCTURED_REPLY refused")
    if raw.go(name) != REP_ACK:
        fail("GO refused")
    return raw

healthy("nothing")
# Connections left half-way, open all along: they must hold no one up.
idle = []
for i in range(8):
    r = Raw(SOCKET)
    if i % 2:
        r.greeting()
    idle.append(r)

# Negotiation.
r = Raw(SOCKET)
r.greeting(0xffffffff)
hangs_up(r, "unknown client flags")
healthy("unknown client flags")

r = Raw(SOCKET)
r.greeting()
r.send(struct.pack(">QII", 0x1122334455667788, OPT_GO, 0))
hangs_up(r, "a bad option magic")
healthy("a bad option magic")

r = Raw(SOCKET)
r.greeting()
if r.option(0xdeadbeef, b"junk")[-1][0] != REP_ERR_UNSUP:
    fail("an unknown option is not refused with ERR_UNSUP")
if r.option(OPT_STARTTLS)[-1][0] != REP_ERR_UNSUP:
    fail("STARTTLS is not refused with ERR_UNSUP")
if r.option(OPT_STARTTLS, b"x" * 100)[-1][0] not in (REP_ERR_UNSUP,
                                                     REP_ERR_INVALID):
    fail("STARTTLS with data is not refused")
# Option data past the limit is read and dropped, the option refused.
if r.option(OPT_GO, b"\0" * 100000)[-1][0] != REP_ERR_TOO_BIG:
    fail("100000 bytes of option data are not refused with ERR_TOO_BIG")
if r.option(OPT_STRUCTURED_REPLY)[-1][0] != REP_ACK:
    fail("STRUCTURED_REPLY refused")
# Names and lengths that claim more than the option holds.
for what, code, data in (
        ("an export name longer than its option", OPT_GO,
         struct.pack(">I", 0xffffffff) + b"good\0\0"),
        ("an INFO count past the option", OPT_INFO,
         struct.pack(">I", 4) + b"good" + struct.pack(">H", 0xffff)),
        ("a context name longer than its option", OPT_LIST_META_CONTEXT,
         struct.pack(">I", 4) + b"good" + struct.pack(">II", 1, 0xfffffff0)
         + b"base:allocation"),
        ("a query count past the option", OPT_SET_META_CONTEXT,
         struct.pack(">I", 4) + b"good" + struct.pack(">I", 0xffffffff))):
    got = r.option(code, data)[-1][0]
    if got != REP_ERR_INVALID:
        fail("%s: reply %x, expected ERR_INVALID" % (what, got))
# Oversized names that fit the option: nothing is that name.
if r.option(OPT_GO, go_data(b"e" * 60000))[-1][0] != REP_ERR_UNKNOWN:
    fail("a 60000-byte export name is not ERR_UNKNOWN")
got = r.option(OPT_SET_META_CONTEXT,
               meta_data(b"good", b"base:" + b"a" * 60000))
if got[-1][0] != REP_ACK or any(t == REP_META_CONTEXT for t, _ in got):
    fail("a 60005-byte context name selected something: %r"
         % [t for t, _ in got])
if r.option(OPT_SET_META_CONTEXT,
            meta_data(b"good", *[b"base:allocation"] * 3000))[-1][0] \
        != REP_ACK:
    fail("3000 copies of base:allocation are refused")
# The connection still negotiates after all of that.
if r.go(b"good") != REP_ACK:
    fail("GO after the bad options")
r.request(READ, 0, 512, cookie=9)
magic, flags, ctype, cookie, length = struct.unpack(">IHHQI", r.recvn(20))
if cookie != 9 or r.recvn(length)[8:] != b"\x5a" * 512:
    fail("a read after the bad options")
r.close()
healthy("bad options")

r = Raw(SOCKET)
r.greeting()
# The length of a 4 GiB option, and the connection cut inside it.
r.send(struct.pack(">QII", IHAVEOPT, OPT_GO, 0xffffffff) + b"\0" * 4096)
r.close()
healthy("a 4 GiB option cut short")

r = Raw(SOCKET)
r.greeting()
r.send(struct.pack(">QII", IHAVEOPT, OPT_EXPORT_NAME, 5) + b"wrong")
hangs_up(r, "EXPORT_NAME of an unknown export")
healthy("EXPORT_NAME of an unknown export")

# Transmission, simple replies.
r = transmission()
EINVAL, EOVERFLOW, EPERM = errno.EINVAL, errno.EOVERFLOW, errno.EPERM
cases = (
    ("an unknown command", (0x55, 0, 512), EINVAL),
    ("a read past the end", (READ, SIZE, 512), EINVAL),
    ("a read ending past the end", (READ, SIZE - 512, 1024), EINVAL),
    ("a read whose end overflows 2^64", (READ, 2**64 - 512, 1024), EINVAL),
    ("a read at 2^64 - 1", (READ, 2**64 - 1, 0xffffffff), EOVERFLOW),
    ("a trim whose end overflows 2^64", (TRIM, 2**64 - 4096, 8192), EINVAL),
    ("write zeroes whose end overflows 2^64",
     (WRITE_ZEROES, 2**64 - 1, 2), EINVAL),
    ("block status whose end overflows 2^64",
     (BLOCK_STATUS, 2**64 - 1, 2), EINVAL),
    ("every flag bit on a read", (READ, 0, 512, 0xffff), EINVAL),
)
for what, args, want in cases:
    r.request(*args)
    error, _ = r.simple()
    if error != want:
        fail("%s: error %d, expected %d" % (what, error, want))
# A write whose end overflows: refused, its payload still read.
r.request(WRITE, 2**64 - 512, 1024, cookie=2, payload=b"\xee" * 1024)
if r.simple(2)[0] != EINVAL:
    fail("a write whose end overflows 2^64 is not refused with EINVAL")
r.request(READ, 0, 512, cookie=3)
error, data = r.simple(3, 512)
if error or data != b"\x5a" * 512:
    fail("the connection is out of step after a refused write")
r.close()
healthy("bad requests")

# Writes cut short: the header claims more than ever comes.
for what, length, sent in (("a truncated write", 4096, 100),
                           ("an oversized write cut short", 0xffffffff,
                            65536)):
    r = transmission()
    r.request(WRITE, 8192, length, payload=b"\xee" * sent)
    r.close()
    healthy(what)
r = transmission()
r.send(struct.pack(">IHH", REQUEST_MAGIC, 0, WRITE) + b"\0" * 6)
r.close()
healthy("a truncated request header")

r = transmission()
r.send(b"\x25\x60\x95\x14" + b"\0" * 24)
hangs_up(r, "a bad request magic")
healthy("a bad request magic")

# Random bytes: after the greeting, and after a valid handshake.
rng = random.Random(20261204)
for i in range(40):
    junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096)))
    if i % 2:
        r = Raw(SOCKET)
        r.greeting()
    else:
        r = transmission(structured=bool(i % 4))
    try:
        r.send(junk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    r.close()
    healthy("%d random bytes %s" % (len(junk),
            "during negotiation" if i % 2 else "after a handshake"))
# Random requests with a valid magic: any command, flags, offset, length.
r = transmission(structured=True)
try:
    for i in range(200):
        cmd = rng.choice((READ, TRIM, WRITE_ZEROES, BLOCK_STATUS, FLUSH,
                          rng.randrange(3, 65536)))
        r.request(cmd,
                  rng.choice((rng.randrange(SIZE), rng.randrange(2**64))),
                  rng.choice((rng.randrange(1 << 16), rng.randrange(2**32))),
                  rng.randrange(65536), cookie=i)
except (BrokenPipeError, ConnectionResetError):
    pass
r.close()
healthy("random requests")

for r in idle:
    r.close()
healthy("closing the idle connections")
print("malformed traffic: %d steps, the server served throughout" % step)
EOF_PY

kill -TERM "$server"
status=0
wait "$server" || status=$?
[ "$status" -eq 0 ] || fail "the server exited with status $status"
qemu_clean img.qcow2
qemu-io -f qcow2 -c 'read -P 0x5a 0 64k' img.qcow2 | grep -q '^read' ||
  fail "the data written first is not in the image"
