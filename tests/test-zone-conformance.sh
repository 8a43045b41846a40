#!/usr/bin/env bash
# Every row of docs/nbd-zones.md's command mapping and error tables, over
# the nbdkit plugin: zq-zonetest sends one request per line and checks the
# server's verdict and the bytes read back; zqcow2-img zones, after the
# server has exited, shows what reached the write-pointer table.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires zq-zonetest nbdinfo qemu-img
plugin_ok
zqimg_ok
scratch_dir

# zonetest LABEL [NBDKIT-OPTIONS...] -- [PLUGIN-PARAMS...] < SCRIPT
# Serves the image captive and runs a zq-zonetest script against it.
# Scripts that write end with a FLUSH, so that the zone reports taken
# afterwards judge the command mapping alone; what a shutdown without
# FLUSH keeps is test-zone-persistence.sh's subject.
zonetest ()
{
    local label="$1"
    shift
    echo "-- $label"
    zq_nbdkit "$@" --run 'zq-zonetest script "$uri"' ||
        fail "$label: some checks failed (the FAILED lines above name the row)"
}

# expect_description IMG LINE: the export description nbdinfo shows.
expect_description ()
{
    local got
    got="$(zq_nbdkit -r -- file="$1" --run 'nbdinfo --json "$uri"' |
           jq -r '.exports[0].description')" ||
        fail "export description: nbdinfo failed on $1"
    [ "$got" = "$2" ] ||
        fail "export description of $1: expected '$2', got '$got'"
    echo "ok      export description: $got"
}

MiB=$((1 << 20))
K=1024

# ---------------------------------------------------------------------
# The main image: 24 zones of 1 MiB (capacity 1 MiB), 2 conventional.
zoned_create main.qcow2 24M \
    zone.size=1M,zone.capacity=1M,zone.conventional_zones=2,zone.max_open_zones=4,zone.max_active_zones=12

expect_description main.qcow2 \
    'host-managed zoned: 24 x 1 MiB zones (capacity 1 MiB), 2 conventional, max open 4, max active 12'

zonetest "main image, first run" -- file=main.qcow2 <<'EOF'
set zs 1M

row geometry: size, block size minimum 512 (preferred: the cluster)
size => 24M
minblock => 512
prefblock => 64k
readonly => no

row write at the WP advances it
write z2 4k tag=2 => ok
read z2 4k => tag=2
read z2+4k zs-4k => zero
write z2+4k 8k tag=2 => ok
read z2 12k => tag=2
read z2+12k zs-12k => zero

row write not at the WP -> EIO
write z2+16k 4k => EIO
write z2+8k 4k => EIO
write z2 4k => EIO
write z2+zs-4k 4k => EIO
read z2 12k => tag=2
read z2+12k zs-12k => zero
write z2+12k 4k tag=2 => ok

row a refused request changes nothing (zone 2, wp 16k)
save before z2 zs
write z2+20k 4k => EIO
write z2+zs-4k 8k => EIO
write z2+100 512 => EINVAL
write z2+16k 1000 => EINVAL
zero z2+20k 4k => EIO
zero z2+16k 100 => EINVAL
read z2 zs => saved=before
write z2+16k 4k tag=2 => ok

row FLUSH works, FUA writes too
flush => ok
write z2+20k 4k tag=2 fua => ok
flush => ok
read z2 24k => tag=2

row write into a FULL zone -> EIO
write z3 zs-4k => ok
write z3+zs-4k 4k => ok
write z3+zs-4k 4k => EIO
write z3 4k => EIO
write z3+zs-512 512 => EIO
zero z3 4k => EIO
zero z3+zs-4k 4k => EIO
read z3 zs => tag=1

row across a zone boundary -> EIO
write z4 zs-4k => ok
write z4+zs-4k 8k => EIO
zero z4+zs-4k 8k => EIO
write z1+zs-4k 8k => EIO
read z4 zs-4k => tag=1
read z4+zs-4k 4k => zero
read z5 zs => zero
read z2 24k => tag=2

row unaligned (offset or length) in a sequential zone -> EINVAL
write z5 4000 => EINVAL
write z5 100 => EINVAL
write z5+100 512 => EINVAL
write z5+256 4k => EINVAL
zero z5 1000 => EINVAL
read z5 zs => zero
write z5 4k => ok
read z5 4k => tag=1

row conventional zones accept random unaligned writes
write 1000 100 tag=3 => ok
write 500 10 tag=4 => ok
write z1+12345 777 tag=3 => ok
write z1+12000 100 tag=5 => ok
write 1 1 tag=6 => ok
read 1000 100 => tag=3
read 500 10 => tag=4
read 1 1 => tag=6
read z1+12000 100 => tag=5
read z1+12345 777 => tag=3
write 1000 100 tag=7 => ok
read 1000 100 => tag=7
zero 2000 3000 => ok
read 2000 3000 => zero
read z2 24k => tag=2

row request past the end -> EINVAL (writes: ENOSPC, decided by nbdkit)
read end 512 => EINVAL
read end-512 1024 => EINVAL
trim end 512 => EINVAL
trim end-zs 2*zs => EINVAL
status end 512 => EINVAL
write end 512 => ENOSPC
write end-512 1024 => ENOSPC
zero end 512 => ENOSPC
read z23 zs => zero

row read at/beyond the WP returns zeroes even after data was there (reset)
write z6 256k tag=5 => ok
read z6 256k => tag=5
trim z6 zs => ok
read z6 zs => zero
write z6 4k tag=6 => ok
read z6 4k => tag=6
read z6+4k zs-4k => zero
status z6+64k zs-64k => hole,zero

row base:allocation below the WP from the mapping, beyond it hole+zero
write z7 128k => ok
write z7+128k 4k => ok
status z7 128k => data
status z7+132k 60k => hole,zero
status z7+192k zs-192k => hole,zero
status z8 zs => hole,zero

row TRIM of a whole zone resets it
trim z7 zs => ok
read z7 zs => zero
status z7 zs => hole,zero
write z7+132k 4k => EIO
write z7 4k => ok

row TRIM of part of a zone is a no-op
write z8 64k tag=7 => ok
trim z8 32k => ok
trim z8+4k zs-4k => ok
trim z8 zs-512 => ok
read z8 64k => tag=7
write z8+64k 4k => ok
write z9 16k tag=8 => ok
trim z8+4k 2*zs-4k => ok
read z8 64k => tag=7
read z8+64k 4k => tag=1
read z9 zs => zero
write z9 4k => ok

row WRITE_ZEROES from the WP to start+capacity finishes the zone (FULL)
write z10 64k => ok
zero z10+64k zs-64k => ok
read z10 64k => tag=1
read z10+64k zs-64k => zero
write z10+zs-4k 4k => EIO
zero z10+zs-4k 4k => EIO
zero z11 zs => ok
write z11+zs-512 512 => EIO
read z11 zs => zero
zero z12 zs nohole fua => ok
write z12+zs-4k 4k => EIO

row write-zeroes obeys the WP rules
zero z13+4k 4k => EIO
zero z13 1000 => EINVAL
zero z13+512 512 => EIO
zero z13+zs-4k 8k => EIO
zero z13 4k => ok
write z13 4k => EIO
write z13+4k 4k => ok
read z13 4k => zero
read z13+4k 4k => tag=1
read z13+8k zs-8k => zero

row write-zeroes with FAST_ZERO: whole unallocated clusters at the WP
zero z14 64k fast => ok
zero z14 64k fast => EIO
read z14 zs => zero
write z14+64k 4k => ok
flush => ok
EOF

zone_report main.qcow2 > main.zones
r="zones report after the first run"
expect_zone "$r" main.zones 0 nw 0
expect_zone "$r" main.zones 1 nw $MiB
expect_zone "$r" main.zones 2 cl $((2 * MiB + 24 * K)) $MiB $MiB
expect_zone "$r" main.zones 3 fu $((4 * MiB))
expect_zone "$r" main.zones 4 cl $((5 * MiB - 4 * K))
expect_zone "$r" main.zones 5 cl $((5 * MiB + 4 * K))
expect_zone "$r" main.zones 6 cl $((6 * MiB + 4 * K))
expect_zone "$r" main.zones 7 cl $((7 * MiB + 4 * K))
expect_zone "$r" main.zones 8 cl $((8 * MiB + 68 * K))
expect_zone "$r" main.zones 9 cl $((9 * MiB + 4 * K))
expect_zone "$r" main.zones 10 fu $((11 * MiB))
expect_zone "$r" main.zones 11 fu $((12 * MiB))
expect_zone "$r" main.zones 12 fu $((13 * MiB))
expect_zone "$r" main.zones 13 cl $((13 * MiB + 8 * K))
expect_zone "$r" main.zones 14 cl $((14 * MiB + 68 * K))
for z in $(seq 15 23); do
    expect_zone "$r" main.zones $z em $((z * MiB))
done
zoned_check "$r" main.qcow2
qemu_check "$r" main.qcow2

# Stale data beyond the write pointer: move zone 8's pointer back from
# 68k to 32k in the file.  Its clusters still hold pattern 7 up to 64k.
set_disk_wp main.qcow2 8 $((8 * MiB + 32 * K))

zonetest "main image, second run" -- file=main.qcow2 <<'EOF'
set zs 1M

row data and write pointers survive a restart
read 0 1 => zero
read 1 1 => tag=6
read 2 498 => zero
read 500 10 => tag=4
read 1000 100 => tag=7
read z1+12345 777 => tag=3
read z2 24k => tag=2
read z2+24k zs-24k => zero
write z2+24k 4k tag=2 => ok
read z3 zs => tag=1
write z3+zs-4k 4k => EIO
read z4 zs-4k => tag=1
read z13+4k 4k => tag=1

row read at/beyond the WP returns zeroes where clusters hold stale data
read z8 32k => tag=7
read z8+32k zs-32k => zero
status z8 32k => data
status z8+32k 32k => hole,zero
status z8+64k zs-64k => hole,zero
write z8+36k 4k => EIO
write z8+32k 4k tag=9 => ok
read z8+32k 4k => tag=9
read z8+36k zs-36k => zero
status z8+36k 28k => hole,zero

row TRIM of the whole export resets all
trim 0 end => ok
read 0 end => zero
status z2 end-z2 => hole,zero
write z3 4k => ok
trim z3 zs => ok
flush => ok
EOF

zone_report main.qcow2 > main.zones
r="zones report after TRIM of the whole export"
expect_zone "$r" main.zones 0 nw 0
expect_zone "$r" main.zones 1 nw $MiB
for z in $(seq 2 23); do
    expect_zone "$r" main.zones $z em $((z * MiB))
done
zoned_check "$r" main.qcow2
qemu_check "$r" main.qcow2

# A read-only server refuses every change and leaves the file as it was.
sum_before="$(sha256 main.qcow2)"
zonetest "main image, nbdkit -r" -r -- file=main.qcow2 <<'EOF'
set zs 1M
row write on nbdkit -r -> EPERM
readonly => yes
write z2 4k => EPERM
zero z2 4k => EPERM
trim z2 zs => EPERM
write 0 512 => EPERM
read z2 zs => zero
EOF
[ "$(sha256 main.qcow2)" = "$sum_before" ] ||
    fail "write on nbdkit -r: main.qcow2 changed under a read-only server"
echo "ok      write on nbdkit -r: main.qcow2 is unchanged"
zone_report main.qcow2 > main.zones
expect_zone "write on nbdkit -r" main.zones 2 em $((2 * MiB))

# ---------------------------------------------------------------------
# Capacity below the zone size: 8 zones of 1 MiB, 768 KiB writable.
zoned_create cap.qcow2 8M \
    zone.size=1M,zone.capacity=768K,zone.conventional_zones=1,zone.max_open_zones=4,zone.max_active_zones=6

zonetest "capacity 768 KiB of 1 MiB" -- file=cap.qcow2 <<'EOF'
set zs 1M
set cap 768k

row past capacity -> EIO (BEYOND_CAPACITY rejects writes, reads zeroes)
write z1+0 cap-4k => ok
write z1+cap-4k 8k => EIO
write z1+cap 4k => EIO
zero z1+cap-4k 8k => EIO
read z1 cap-4k => tag=1
read z1+cap-4k zs-cap+4k => zero
status z1+cap zs-cap => hole,zero
write z1+cap-4k 4k => ok
write z1+cap 4k => EIO
write z1+cap-512 512 => EIO
read z1+cap zs-cap => zero

row WRITE_ZEROES from the WP to start+capacity finishes the zone
write z2 64k => ok
zero z2+64k cap-64k => ok
write z2+cap-4k 4k => EIO

row WRITE_ZEROES from the WP to the zone end finishes the zone
write z3 64k => ok
zero z3+64k zs-64k => ok
write z3+64k 4k => EIO
read z3 64k => tag=1
read z3+64k zs-64k => zero

row TRIM from start to start+capacity resets the zone
trim z1 cap => ok
read z1 zs => zero
write z1 4k => ok

row TRIM of less than the capacity is a no-op
write z4 64k => ok
trim z4 cap-4k => ok
read z4 64k => tag=1
write z4+64k 4k => ok
flush => ok
EOF

zone_report cap.qcow2 > cap.zones
r="capacity 768 KiB"
expect_zone "$r" cap.zones 0 nw 0
expect_zone "$r" cap.zones 1 cl $((MiB + 4 * K)) $((768 * K)) $MiB
expect_zone "$r" cap.zones 2 fu $((3 * MiB)) $((768 * K))
expect_zone "$r" cap.zones 3 fu $((4 * MiB)) $((768 * K))
expect_zone "$r" cap.zones 4 cl $((4 * MiB + 68 * K))
expect_zone "$r" cap.zones 5 em $((5 * MiB))
zoned_check "$r" cap.qcow2

# ---------------------------------------------------------------------
# A shorter last zone: 3.5 MiB in zones of 1 MiB, capacity 768 KiB; the
# last zone is 512 KiB long and its capacity min(768 KiB, 512 KiB).
zoned_create short.qcow2 3584K \
    zone.size=1M,zone.capacity=768K,zone.allow_short_last_zone=on
zone_report short.qcow2 > short.zones
r="shorter last zone, as created"
expect_zone "$r" short.zones 2 em $((2 * MiB)) $((768 * K)) $MiB
expect_zone "$r" short.zones 3 em $((3 * MiB)) $((512 * K)) $((512 * K))

zonetest "shorter last zone" -- file=short.qcow2 <<'EOF'
set zs 1M
row shorter last zone: capacity min(capacity, length)
size => 3584k
write z3 256k => ok
write z3+256k 512k => ENOSPC
write z3+256k 256k => ok
write z3+512k-4k 4k => EIO
read z3 512k => tag=1
write z2 768k => ok
write z2+768k 4k => EIO
flush => ok
EOF
zone_report short.qcow2 > short.zones
r="shorter last zone, after writing"
expect_zone "$r" short.zones 2 fu $((3 * MiB)) $((768 * K)) $MiB
expect_zone "$r" short.zones 3 fu $((3 * MiB + 512 * K)) $((512 * K)) $((512 * K))
zoned_check "$r" short.qcow2

# ---------------------------------------------------------------------
# Open limit: with max open 2, opening a third zone closes the least
# recently used one.  Active limit 3: a fourth zone cannot be opened.
zoned_create lru.qcow2 8M \
    zone.size=1M,zone.capacity=1M,zone.conventional_zones=0,zone.max_open_zones=2,zone.max_active_zones=3
expect_description lru.qcow2 \
    'host-managed zoned: 8 x 1 MiB zones (capacity 1 MiB), 0 conventional, max open 2, max active 3'

zonetest "max open 2, max active 3" -- file=lru.qcow2 <<'EOF'
set zs 1M
row LRU implicit close: writing zones A, B, C with max open 2 closes A
write z0 4k tag=1 => ok
write z1 4k tag=2 => ok
write z2 4k tag=3 => ok
row a closed zone keeps its WP; writing it again reopens it
write z0 4k => EIO
write z0+4k 4k tag=1 => ok
read z0 8k => tag=1
write z1+4k 4k tag=2 => ok
write z2+4k 4k tag=3 => ok
write z0+8k 4k tag=1 => ok
row active limit: a fourth active zone -> ENOSPC, nothing changed
save before z0 4*zs
write z3 4k => ENOSPC
zero z3 4k => ENOSPC
read z0 4*zs => saved=before
row a FULL zone stops counting: filling zone 1 lets zone 3 open
write z1+8k zs-8k tag=2 => ok
write z3 4k tag=4 => ok
write z4 4k => ENOSPC
row a reset zone stops counting
trim z2 zs => ok
write z4 4k tag=5 => ok
flush => ok
EOF
zone_report lru.qcow2 > lru.zones
r="max open 2 / max active 3, after restart"
expect_zone "$r" lru.zones 0 cl $((12 * K))
expect_zone "$r" lru.zones 1 fu $((2 * MiB))
expect_zone "$r" lru.zones 2 em $((2 * MiB))
expect_zone "$r" lru.zones 3 cl $((3 * MiB + 4 * K))
expect_zone "$r" lru.zones 4 cl $((4 * MiB + 4 * K))
expect_zone "$r" lru.zones 5 em $((5 * MiB))

zonetest "max open 2, max active 3, after restart" -- file=lru.qcow2 <<'EOF'
set zs 1M
row after a restart the closed zones count as active
write z5 4k => ENOSPC
read z5 zs => zero
write z0+12k 4k tag=1 => ok
read z0 16k => tag=1
read z1 zs => tag=2
read z3 4k => tag=4
read z4 4k => tag=5
flush => ok
EOF
zoned_check "max open 2 / max active 3" lru.qcow2

# Active limit 2, as the format document puts it.
zoned_create act.qcow2 8M \
    zone.size=1M,zone.capacity=1M,zone.conventional_zones=0,zone.max_open_zones=2,zone.max_active_zones=2
zonetest "max active 2" -- file=act.qcow2 <<'EOF'
set zs 1M
row active limit: two partly written zones, a third EMPTY zone -> ENOSPC
write z0 8k tag=1 => ok
write z1 8k tag=2 => ok
save before z0 3*zs
write z2 4k => ENOSPC
zero z2 zs => ENOSPC
read z0 3*zs => saved=before
write z0+8k 4k tag=1 => ok
flush => ok
EOF
zone_report act.qcow2 > act.zones
r="max active 2"
expect_zone "$r" act.zones 0 cl $((12 * K))
expect_zone "$r" act.zones 1 cl $((MiB + 8 * K))
expect_zone "$r" act.zones 2 em $((2 * MiB))
zoned_check "$r" act.qcow2

# ---------------------------------------------------------------------
# Injected faults: offline zones fail reads and writes with EIO,
# read-only zones fail writes with EPERM and serve reads.
zoned_create faults.qcow2 8M \
    zone.size=1M,zone.capacity=1M,zone.conventional_zones=1
zonetest "faults: filling zones first" -- file=faults.qcow2 <<'EOF'
set zs 1M
write z2 64k tag=2 => ok
write z3 64k tag=3 => ok
write z7 64k tag=7 => ok
flush => ok
EOF
zonetest "faults: offline-zones=3,5-6 readonly-zones=2,7" \
    -- file=faults.qcow2 offline-zones=3,5-6 readonly-zones=2,7 <<'EOF'
set zs 1M
row offline-zones: reads and writes EIO
read z3 4k => EIO
read z3+64k 4k => EIO
write z3+64k 4k => EIO
zero z3+64k 4k => EIO
read z5 4k => EIO
write z5 4k => EIO
read z6+zs-512 512 => EIO
write z6 4k => EIO
row readonly-zones: writes EPERM, reads work
read z2 64k => tag=2
read z2+64k zs-64k => zero
write z2+64k 4k => EPERM
zero z2+64k 4k => EPERM
read z7 64k => tag=7
write z7+64k 4k => EPERM
row zones outside the lists work as usual
write z4 4k => ok
read z4 4k => tag=1
write 0 100 tag=9 => ok
flush => ok
EOF
zone_report faults.qcow2 > faults.zones
r="faults: nothing was changed in the faulty zones"
expect_zone "$r" faults.zones 2 cl $((2 * MiB + 64 * K))
expect_zone "$r" faults.zones 3 cl $((3 * MiB + 64 * K))
expect_zone "$r" faults.zones 5 em $((5 * MiB))
expect_zone "$r" faults.zones 6 em $((6 * MiB))
expect_zone "$r" faults.zones 7 cl $((7 * MiB + 64 * K))
expect_zone "$r" faults.zones 4 cl $((4 * MiB + 4 * K))
zoned_check "$r" faults.qcow2

# ---------------------------------------------------------------------
# Zones smaller than a cluster: 64 zones of 4 KiB on 64 KiB clusters, so
# sixteen zones share each cluster.  A reset releases no cluster (none
# lies wholly inside the zone); the bytes left beyond the write pointer
# read as zeroes all the same.
zoned_create small.qcow2 256K \
    zone.size=4K,zone.conventional_zones=2,zone.max_open_zones=4,zone.max_active_zones=12
expect_description small.qcow2 \
    'host-managed zoned: 64 x 4 KiB zones (capacity 4 KiB), 2 conventional, max open 4, max active 12'

zonetest "4 KiB zones on 64 KiB clusters" -- file=small.qcow2 <<'EOF'
set zs 4k

row small zones: geometry (the preferred block stays the cluster)
size => 256k
minblock => 512
prefblock => 64k

row small zones: write at the WP advances it, anywhere else -> EIO
write z2 1k tag=2 => ok
read z2 1k => tag=2
read z2+1k zs-1k => zero
write z2+2k 1k => EIO
write z2 1k => EIO
write z2+1k 2k tag=2 => ok
read z2 3k => tag=2
write z2+100 512 => EINVAL

row small zones: a write never spans two zones, even in one cluster
write z3+3k 2k => EIO
zero z3+3k 2k => EIO
read z3 zs => zero
read z4 zs => zero

row small zones: a FULL zone takes no more writes
write z3 zs tag=3 => ok
write z3 512 => EIO
write z3+zs-512 512 => EIO
read z3 zs => tag=3

row small zones: neighbours in one cluster keep their data
write z5 2k tag=5 => ok
write z6 2k tag=6 => ok
write z7 zs tag=7 => ok
read z5 2k => tag=5
read z6 2k => tag=6
read z7 zs => tag=7

row small zones: a reset leaves the shared cluster and reads zeroes
trim z6 zs => ok
read z6 zs => zero
status z6 zs => hole,zero
read z5 2k => tag=5
read z7 zs => tag=7
write z6+1k 1k => EIO
write z6 1k tag=8 => ok
read z6 1k => tag=8
read z6+1k zs-1k => zero
status z6+1k zs-1k => hole,zero

row small zones: a partial TRIM is a no-op
trim z5 2k => ok
read z5 2k => tag=5
write z5+2k 1k tag=5 => ok

row small zones: WRITE_ZEROES to the capacity finishes the zone
write z8 1k tag=9 => ok
zero z8+1k zs-1k => ok
write z8+zs-512 512 => EIO
read z8 1k => tag=9
read z8+1k zs-1k => zero

row small zones: conventional zones in the same cluster, random writes
write 100 1000 tag=4 => ok
write z1+512 100 tag=4 => ok
read 100 1000 => tag=4
read z1+512 100 => tag=4
read z2 3k => tag=2

row small zones: zones in the next cluster
write z16 zs tag=6 => ok
write z17 512 tag=6 => ok
read z16 zs => tag=6
read z17 512 => tag=6
flush => ok
EOF

zone_report small.qcow2 > small.zones
r="4 KiB zones, after the run"
expect_zone "$r" small.zones 1 nw $(( 4 * K )) $(( 4 * K )) $(( 4 * K ))
expect_zone "$r" small.zones 2 cl $(( 2 * 4 * K + 3 * K )) $(( 4 * K )) $(( 4 * K ))
expect_zone "$r" small.zones 3 fu $(( 4 * 4 * K ))
expect_zone "$r" small.zones 4 em $(( 4 * 4 * K ))
expect_zone "$r" small.zones 5 cl $(( 5 * 4 * K + 3 * K ))
expect_zone "$r" small.zones 6 cl $(( 6 * 4 * K + K ))
expect_zone "$r" small.zones 7 fu $(( 8 * 4 * K ))
expect_zone "$r" small.zones 8 fu $(( 9 * 4 * K ))
expect_zone "$r" small.zones 16 fu $(( 17 * 4 * K ))
expect_zone "$r" small.zones 17 cl $(( 17 * 4 * K + 512 ))
zoned_check "$r" small.qcow2
qemu_check_exact "$r" small.qcow2

zonetest "4 KiB zones, after a restart" -- file=small.qcow2 <<'EOF'
set zs 4k
row small zones: pointers and data survive a restart
read z2 3k => tag=2
read z2+3k 1k => zero
read z5 3k => tag=5
read z6 1k => tag=8
read z6+1k zs-1k => zero
read z7 zs => tag=7
write z6+1k 1k tag=8 => ok
row small zones: a TRIM of every sequential zone resets them all
trim z2 end-z2 => ok
read z2 end-z2 => zero
read 100 1000 => tag=4
write z7 1k tag=1 => ok
flush => ok
EOF
zone_report small.qcow2 > small.zones
r="4 KiB zones, after resetting them all"
expect_zone "$r" small.zones 6 em $(( 6 * 4 * K ))
expect_zone "$r" small.zones 7 cl $(( 7 * 4 * K + K ))
expect_zone "$r" small.zones 16 em $(( 16 * 4 * K ))
zoned_check "$r" small.qcow2
qemu_check_exact "$r" small.qcow2

# Finish offline: the pointer goes to the zone end, the data stays.
"$ZQCOW2_IMG" zone finish small.qcow2 7 || fail "zone finish of 4 KiB zone 7 failed"
zone_report small.qcow2 > small.zones
expect_zone "4 KiB zone finished" small.zones 7 fu $(( 8 * 4 * K ))
zonetest "4 KiB zones, after finish" -r -- file=small.qcow2 <<'EOF'
set zs 4k
row small zones: a finished zone reads its data, zeroes after it
read z7 1k => tag=1
read z7+1k zs-1k => zero
EOF
zoned_check "4 KiB zone finished" small.qcow2

# Zones sharing clusters written at once, one connection each, several
# writes in flight per zone: each zone reads back its own pattern.
zq_nbdkit -- file=small.qcow2 --run '
    zq-zonetest parallel --zone-size 4k --length 4k --bs 512 --depth 4 \
        "$uri" 9 10 11 12 13 14 15 16 17 18' ||
    fail "4 KiB zones: parallel writes to zones in shared clusters failed"
zone_report small.qcow2 > small.zones
for z in 9 10 11 12 13 14 15 16 17 18; do
    expect_zone "4 KiB zones, parallel" small.zones $z fu $(( (z + 1) * 4 * K ))
done
zoned_check "4 KiB zones, parallel" small.qcow2

echo "test-zone-conformance: all rows passed"
