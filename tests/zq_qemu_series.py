"""Zoned qcow2 images as QEMU's zoned-qcow2 series (v8/v9 code, kept by
v10/v11) lays them out, and the checks that series makes when it opens
one.  Both are written here from the format, independently of zqcow2's
lib/, so that the tests compare zqcow2 against something it did not
produce.  Run with /usr/bin/python3:

  zq_qemu_series.py write IMG SIZE ZONE_SIZE [key=value ...]
      cluster=64K capacity=ZONE_SIZE conventional=0 max_open=0
      max_active=0 max_append=64K-or-less zonedmeta_size=8*nr_zones
      order=le|be  wp=ZONE:OFFSET (repeatable; absolute guest offset)
    Every sequential zone with wp > start holds data up to wp (or its
    capacity): byte 0x40 + zone % 64, in clusters the image maps.  The write-pointer
    table is in host order (little-endian, as the series writes it on
    x86) unless order=be.

  zq_qemu_series.py check IMG
    The series' open-time checks of the zoned extension, each failure
    printed as one line; exit 1 if any fails.

  zq_qemu_series.py entry IMG ZONE
    The zone's write-pointer entry read big-endian, in decimal.

Sizes take K and M suffixes (powers of 1024).
"""

import struct
import sys

ZONED_MAGIC = 0x007A6264
FEATURE_TABLE_MAGIC = 0x6803F857
ZONED_BIT = 1 << 5
CONVENTIONAL_BIT = 1 << 59
COPIED = 1 << 63
HEADER_LENGTH = 112
REFCOUNT_ORDER = 4                      # 16-bit refcounts, as qemu-img


def number(text):
    """A byte count with an optional K or M suffix."""
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1:].upper() in scale:
        return int(text[:-1]) * scale[text[-1:].upper()]
    return int(text)


def pattern_byte(zone):
    return 0x40 + zone % 64


def feature_table():
    """The feature name table: QEMU's entries plus the zoned bit."""
    names = [(0, 0, b"dirty bit"), (0, 1, b"corrupt bit"),
             (0, 2, b"external data file"), (0, 3, b"compression type"),
             (0, 4, b"extended L2 entries"), (0, 5, b"zoned format"),
             (1, 0, b"lazy refcounts"), (2, 0, b"bitmaps"),
             (2, 1, b"raw external data")]
    return b"".join(struct.pack(">BB46s", t, b, n) for t, b, n in names)


def extension(magic, payload):
    pad = (-len(payload)) % 8
    return struct.pack(">II", magic, len(payload)) + payload + b"\0" * pad


def zoned_payload(g):
    """The 56-byte payload, fields big-endian at the format's offsets
    (bytes 4 and 12 hold unaligned u64s)."""
    return struct.pack(">B3xQQIIIIIQQ", 1, g["zone_size"], g["capacity"],
                       g["conventional"], g["nr_zones"], g["max_active"],
                       g["max_open"], g["max_append"],
                       g["zonedmeta_size"], g["zonedmeta_offset"])


def write_image(path, size, zone_size, opts):
    cs = number(opts.get("cluster", "64K"))
    capacity = number(opts.get("capacity", str(zone_size)))
    nr_zones = -(-size // zone_size)
    max_append = opts.get("max_append")
    if max_append is None:
        # The series' rule: max_append_bytes + 512 < zone_capacity.
        max_append = min(64 << 10, (capacity - 1024) // 512 * 512)
    else:
        max_append = number(max_append)
    g = {
        "zone_size": zone_size, "capacity": capacity,
        "conventional": int(opts.get("conventional", "0")),
        "nr_zones": nr_zones,
        "max_open": int(opts.get("max_open", "0")),
        "max_active": int(opts.get("max_active", "0")),
        "max_append": max_append,
        "zonedmeta_size": number(opts.get("zonedmeta_size",
                                          str(8 * nr_zones))),
    }
    wps = {}
    for spec in opts.get("wp", []):
        zone, offset = spec.split(":")
        wps[int(zone)] = number(offset)
    little_endian = opts.get("order", "le") == "le"

    # Cluster 0 header, 1 refcount table, 2 refcount block, then the L1
    # table, the write-pointer table, L2 tables and data clusters.
    l2_entries = cs // 8
    l1_size = -(-size // (cs * l2_entries))
    l1_clusters = -(-l1_size * 8 // cs)
    l1_offset = 3 * cs
    wp_offset = l1_offset + l1_clusters * cs
    wp_clusters = -(-g["zonedmeta_size"] // cs)
    g["zonedmeta_offset"] = wp_offset
    next_free = wp_offset + wp_clusters * cs

    l1 = [0] * l1_size
    l2_tables = {}                      # L1 index -> [entries]
    data = {}                           # host offset -> cluster bytes

    def cluster_for(guest):
        """The host cluster mapping guest cluster `guest`, allocated."""
        nonlocal next_free
        index = guest // l2_entries
        if index not in l2_tables:
            l2_tables[index] = [0] * l2_entries
            l1[index] = next_free | COPIED
            next_free += cs
        table = l2_tables[index]
        if table[guest % l2_entries] == 0:
            table[guest % l2_entries] = next_free | COPIED
            data[next_free] = bytearray(cs)
            next_free += cs
        return table[guest % l2_entries] & ~COPIED

    entries = []
    for zone in range(nr_zones):
        start = zone * zone_size
        if zone < g["conventional"]:
            entries.append(start | CONVENTIONAL_BIT)
            continue
        wp = wps.get(zone, start)
        entries.append(wp)
        for offset in range(start, min(wp, start + capacity), 512):
            host = cluster_for(offset // cs)
            data[host][offset % cs:offset % cs + 512] = \
                bytes([pattern_byte(zone)]) * 512

    total_clusters = next_free // cs
    if total_clusters > cs * 8 // (1 << REFCOUNT_ORDER):
        sys.exit("zq_qemu_series: image too large for one refcount block")

    header = struct.pack(">IIQIIQIIQQIIQQQQII", 0x514649FB, 3, 0, 0,
                         cs.bit_length() - 1, size, 0, l1_size, l1_offset,
                         cs, 1, 0, 0, ZONED_BIT, 0, 0, REFCOUNT_ORDER,
                         HEADER_LENGTH)
    header += b"\0" * (HEADER_LENGTH - len(header))   # compression zlib
    header += extension(FEATURE_TABLE_MAGIC, feature_table())
    header += extension(ZONED_MAGIC, zoned_payload(g))
    header += b"\0" * 8                                 # end of extensions

    refblock = bytearray(cs)
    for i in range(total_clusters):
        struct.pack_into(">H", refblock, 2 * i, 1)

    order = "<" if little_endian else ">"
    with open(path, "wb") as f:
        f.truncate(next_free)
        f.seek(0)
        f.write(header)
        f.seek(cs)
        f.write(struct.pack(">Q", 2 * cs))
        f.seek(2 * cs)
        f.write(refblock)
        f.seek(l1_offset)
        f.write(struct.pack(">%dQ" % l1_size, *l1))
        f.seek(wp_offset)
        f.write(struct.pack(order + "%dQ" % nr_zones, *entries))
        for index, table in l2_tables.items():
            f.seek(l1[index] & ~COPIED)
            f.write(struct.pack(">%dQ" % l2_entries, *table))
        for host, cluster in data.items():
            f.seek(host)
            f.write(cluster)


def read_geometry(path):
    """(virtual size, cluster size, incompatible bits, zoned fields or
    None, the file's bytes) of a qcow2 v3 image."""
    with open(path, "rb") as f:
        raw = f.read()
    (magic, version, _, _, cluster_bits, size, _, _, _, _, _, _, _,
     incompatible, _, _, _, header_length) = \
        struct.unpack_from(">IIQIIQIIQQIIQQQQII", raw, 0)
    if magic != 0x514649FB or version != 3:
        return size, 1 << cluster_bits, incompatible, None, raw
    pos = header_length
    while pos + 8 <= len(raw):
        ext_magic, length = struct.unpack_from(">II", raw, pos)
        if ext_magic == 0:
            break
        if ext_magic == ZONED_MAGIC and length >= 56:
            fields = struct.unpack_from(">B3xQQIIIIIQQ", raw, pos + 8)
            names = ("model", "zone_size", "capacity", "conventional",
                     "nr_zones", "max_active", "max_open", "max_append",
                     "zonedmeta_size", "zonedmeta_offset")
            return (size, 1 << cluster_bits, incompatible,
                    dict(zip(names, fields)), raw)
        pos += 8 + length + (-length) % 8
    return size, 1 << cluster_bits, incompatible, None, raw


def series_checks(path):
    """The failures of the series' open-time checks, as sentences."""
    size, cs, incompatible, g, raw = read_geometry(path)
    bad = []
    if g is None:
        return ["no zoned extension in a version 3 header"]
    if not incompatible & ZONED_BIT:
        bad.append("incompatible bit 5 is clear")
    if g["model"] != 1:
        bad.append("zone_model %d is not host-managed" % g["model"])
    zs = g["zone_size"]
    if zs < 512 or zs & (zs - 1):
        bad.append("zone_size %d is not a power of two >= 512" % zs)
        return bad
    if g["capacity"] == 0 or g["capacity"] > zs:
        bad.append("zone_capacity %d is not in (0, zone_size %d]"
                   % (g["capacity"], zs))
    if g["nr_zones"] != -(-size // zs):
        bad.append("nr_zones %d is not ceil(size %d / zone_size %d) = %d"
                   % (g["nr_zones"], size, zs, -(-size // zs)))
    if g["nr_zones"] > (1 << 29) - 1:
        bad.append("nr_zones %d is above 2^29 - 1" % g["nr_zones"])
    if g["conventional"] >= g["nr_zones"]:
        bad.append("conventional_zones %d is not below nr_zones %d"
                   % (g["conventional"], g["nr_zones"]))
    if g["max_append"] + 512 >= g["capacity"]:
        bad.append("max_append_bytes %d + 512 is not below zone_capacity %d"
                   % (g["max_append"], g["capacity"]))
    # The series reads zonedmeta_size bytes into a buffer of 8 x nr_zones.
    if g["zonedmeta_size"] != 8 * g["nr_zones"]:
        bad.append("zonedmeta_size %d is not 8 x nr_zones = %d"
                   % (g["zonedmeta_size"], 8 * g["nr_zones"]))
    if g["zonedmeta_offset"] % cs or \
            g["zonedmeta_offset"] + 8 * g["nr_zones"] > len(raw):
        bad.append("the table at %d is not cluster-aligned inside the file"
                   % g["zonedmeta_offset"])
    # It clamps max_open to max_active without a zero test: an open
    # limit alone would mean no limit to it, and a limit to zqcow2.
    if g["max_open"] and not g["max_active"]:
        bad.append("max_open_zones %d without max_active_zones"
                   % g["max_open"])
    if g["max_active"] and g["max_open"] > g["max_active"]:
        bad.append("max_open_zones %d is above max_active_zones %d"
                   % (g["max_open"], g["max_active"]))
    return bad


def main(argv):
    if len(argv) >= 4 and argv[0] == "write":
        opts = {"wp": []}
        for item in argv[4:]:
            key, value = item.split("=", 1)
            if key == "wp":
                opts["wp"].append(value)
            else:
                opts[key] = value
        write_image(argv[1], number(argv[2]), number(argv[3]), opts)
        return 0
    if len(argv) == 2 and argv[0] == "check":
        bad = series_checks(argv[1])
        for line in bad:
            print("%s: %s" % (argv[1], line))
        return 1 if bad else 0
    if len(argv) == 3 and argv[0] == "entry":
        _, _, _, g, raw = read_geometry(argv[1])
        print(struct.unpack_from(">Q", raw, g["zonedmeta_offset"]
                                 + 8 * int(argv[2]))[0])
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
