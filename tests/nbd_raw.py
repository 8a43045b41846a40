"""A raw-socket NBD client for the zqcow2-nbd tests: every byte on the
wire is the test's own, so it can send what no library would."""

import socket
import struct

NBD_MAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698

OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS = 1, 2, 3, 5
OPT_INFO, OPT_GO, OPT_STRUCTURED_REPLY = 6, 7, 8
OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT = 9, 10
REP_ACK, REP_META_CONTEXT = 1, 4
REP_ERR_UNSUP, REP_ERR_INVALID = 0x80000001, 0x80000003
REP_ERR_UNKNOWN, REP_ERR_TOO_BIG = 0x80000006, 0x80000009
READ, WRITE, DISC, FLUSH, TRIM, WRITE_ZEROES, BLOCK_STATUS = (
    0, 1, 2, 3, 4, 6, 7)


class Closed(Exception):
    """The server closed the connection."""


class Raw:
    """One connection, from the greeting on."""

    def __init__(self, path, timeout=10):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(timeout)
        self.s.connect(path)

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def recvn(self, n):
        data = b""
        while len(data) < n:
            try:
                more = self.s.recv(n - len(data))
            except ConnectionResetError:
                more = b""
            if not more:
                raise Closed()
            data += more
        return data

    def closed(self):
        """True if the server hangs up (within the timeout), dropping
        anything it still sends first."""
        try:
            while self.s.recv(65536):
                pass
            return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def greeting(self, client_flags=3):
        magic, opt, gflags = struct.unpack(">QQH", self.recvn(18))
        assert magic == NBD_MAGIC and opt == IHAVEOPT, "greeting"
        self.send(struct.pack(">I", client_flags))
        return gflags

    def option(self, code, data=b"", length=None):
        """Sends an option (length: what the header claims, default the
        data's) and returns its replies, up to ACK or an error."""
        if length is None:
            length = len(data)
        self.send(struct.pack(">QII", IHAVEOPT, code, length) + data)
        return self.replies(code)

    def replies(self, code):
        got = []
        while True:
            magic, opt, rtype, length = struct.unpack(">QIII",
                                                      self.recvn(20))
            assert magic == REP_MAGIC and opt == code, \
                "option %d: reply %x %d" % (code, magic, opt)
            got.append((rtype, self.recvn(length)))
            if rtype == REP_ACK or rtype & 0x80000000:
                return got

    def go(self, name=b""):
        """NBD_OPT_GO; returns the last reply type (REP_ACK when the
        transmission phase has begun)."""
        return self.option(OPT_GO, go_data(name))[-1][0]

    def request(self, cmd, offset, length, flags=0, cookie=1, payload=b""):
        self.send(struct.pack(">IHHQQI", REQUEST_MAGIC, flags, cmd, cookie,
                              offset, length) + payload)

    def simple(self, cookie=1, data_len=0):
        """A simple reply: (error, data)."""
        magic, error, got = struct.unpack(">IIQ", self.recvn(16))
        assert magic == SIMPLE_MAGIC and got == cookie, \
            "simple reply %x cookie %d, expected %d" % (magic, got, cookie)
        return error, self.recvn(data_len) if error == 0 else b""


def go_data(name, infos=()):
    return (struct.pack(">I", len(name)) + name +
            struct.pack(">H", len(infos)) +
            b"".join(struct.pack(">H", i) for i in infos))


def meta_data(name, *queries):
    return (struct.pack(">I", len(name)) + name +
            struct.pack(">I", len(queries)) +
            b"".join(struct.pack(">I", len(q)) + q for q in queries))
