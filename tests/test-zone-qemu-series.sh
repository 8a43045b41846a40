#!/usr/bin/env bash
# Images laid out byte for byte as QEMU's zoned-qcow2 series writes them
# (zq_qemu_series.py, not zqcow2's create): write-pointer tables in host
# (little-endian) order, zonedmeta_size = 8 x nr_zones, zone 0 empty or
# conventional, zones partly written and full, zones smaller than a
# cluster.  Each opens read-write through the nbdkit plugin and through
# zqcow2-nbd, reports its zones and data as written, takes a write at a
# write pointer, and is left with a big-endian table that
# zqcow2-img check and qemu-img check find clean.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires qemu-io qemu-img nbdkit /usr/bin/python3
plugin_ok
zqimg_ok
: "${ZQCOW2_NBD:=$_zq_testdir/../server/zqcow2-nbd}"
[ -x "$ZQCOW2_NBD" ] || skip "zqcow2-nbd not built: $ZQCOW2_NBD"
scratch_dir

K=1024
MiB=$(( 1 << 20 ))

series () { /usr/bin/python3 "$_zq_testdir/zq_qemu_series.py" "$@"; }

# expected_report NR ZONE-SIZE CAPACITY CONVENTIONAL [ZONE:WP ...]: the
# lines "ZONE COND WP ENTRY" of all zones: condition and write pointer
# as the zone report must show them (a full zone's at its end), and the
# table entry that records them.
expected_report ()
{
    local nr="$1" zs="$2" cap="$3" conv="$4" z start wp cond spec entry
    shift 4
    for (( z = 0; z < nr; z++ )); do
        start=$(( z * zs ))
        wp=$start cond=em
        for spec in "$@"; do
            if [ "${spec%%:*}" -eq "$z" ]; then wp="${spec#*:}"; fi
        done
        entry=$wp
        if [ "$z" -lt "$conv" ]; then
            cond=nw entry=$(( start | 1 << 59 ))
        elif [ "$wp" -ge $(( start + cap )) ]; then
            cond=fu wp=$(( start + zs ))
        elif [ "$wp" -gt "$start" ]; then
            cond=cl
        fi
        echo "$z $cond $wp $entry"
    done
}

# same_report ROW IMG EXPECTED: the zone report of IMG, as "ZONE COND
# WP", is what the file EXPECTED says.
same_report ()
{
    zone_report "$2" | awk '{ print $1, $6, $5 }' >"$1.report"
    cut -d' ' -f1-3 "$3" >"$1.expected"
    cmp -s "$1.expected" "$1.report" ||
        { diff "$1.expected" "$1.report" | head -20 >&2
          fail "$1: the zone report of $2 is not as written"; }
    echo "ok      $1: the zone report matches"
}

# data_reads ZONE-SIZE CAPACITY EXPECTED: qemu-io -c arguments that read
# every written zone of EXPECTED back: its pattern up to the write
# pointer or the capacity (as zq_qemu_series.py writes it), zeroes for
# 512 bytes beyond the pointer of a closed zone.
data_reads ()
{
    local z cond wp start end
    while read -r z cond wp _; do
        start=$(( z * $1 ))
        end=$(( wp < start + $2 ? wp : start + $2 ))
        case "$cond" in
            cl|fu) printf -- '-c "read -P %d %d %d" ' \
                       $(( 0x40 + z % 64 )) "$start" $(( end - start )) ;;
        esac
        if [ "$cond" = cl ]; then
            printf -- '-c "read -P 0 %d 512" ' "$wp"
        fi
    done <"$3"
}

# interchange ROW SERIES-IMG ZONE-SIZE CAPACITY EXPECTED ZONE LEN: on a
# copy of
# SERIES-IMG, for each front end in turn: the zone report is EXPECTED
# (with a warning about the little-endian table), the data reads back,
# LEN bytes of 0x7e written at ZONE's write pointer read back, and then
# every entry of the table on disk is the big-endian form of the new
# report, which zqcow2-img check and qemu-img check find clean.
interchange ()
{
    local row="$1" img="$2" zs="$3" cap="$4" expected="$5" zone="$6" len="$7"
    local front copy wp reads cmd z cond entry want after

    wp="$(awk -v z="$zone" '$1 == z { print $3 }' "$expected")"
    reads="$(data_reads "$zs" "$cap" "$expected")"
    awk -v z="$zone" -v wp="$wp" -v len="$len" '
        $1 == z { $3 = $4 = wp + len; $2 = "cl" } { print }' "$expected" \
        >"$row.after"
    cmd="qemu-io -f raw $reads -c \"write -P 0x7e $wp $len\" \
         -c \"read -P 0x7e $wp $len\" \"\$uri\""

    for front in plugin server; do
        copy="$row-$front.qcow2"
        cp "$img" "$copy"
        zone_report "$copy" >/dev/null 2>"$copy.err"
        grep -q "little-endian" "$copy.err" ||
            fail "$row: no warning about the little-endian table: $(cat "$copy.err")"
        same_report "$row, as written" "$copy" "$expected"
        if [ "$front" = plugin ]; then
            zq_nbdkit -- file="$copy" --run "$cmd" >"$copy.out" 2>&1
        else
            "$ZQCOW2_NBD" --run "$cmd" "$copy" >"$copy.out" 2>&1
        fi || { cat "$copy.out" >&2
                fail "$row: reading and writing through the $front failed"; }
        ! grep -q "Pattern verification failed" "$copy.out" ||
            { cat "$copy.out" >&2; fail "$row: $front read back wrong data"; }
        echo "ok      $row: the $front reads the zones and writes at zone $zone's pointer"

        while read -r z _ _ want; do
            [ "$(series entry "$copy" "$z")" -eq "$want" ] ||
                fail "$row: after the $front's write, zone $z's entry on disk is $(series entry "$copy" "$z"), not big-endian $want"
        done <"$row.after"
        echo "ok      $row: after the $front's write the table is big-endian"
        "$ZQCOW2_IMG" check "$copy" >"$copy.check" 2>&1 ||
            { cat "$copy.check" >&2; fail "$row: zqcow2-img check of $copy failed"; }
        ! grep -qi "little-endian\|warning" "$copy.check" ||
            { cat "$copy.check" >&2; fail "$row: zqcow2-img check still warns"; }
        echo "ok      $row: zqcow2-img check is clean"
        same_report "$row, after the $front" "$copy" "$row.after"
        qemu_check_exact "$row, after the $front" "$copy"
    done
}

# A. The issue's case: conventional_zones=0 (QEMU's default), so zone 0
# is an empty sequential zone whose entry 0 reads the same in both byte
# orders; zone 1 partly written, zone 2 full.
series write a.qcow2 8M 1M wp=1:$(( MiB + 12 * K )) wp=2:$(( 3 * MiB ))
series check a.qcow2 || fail "A: the series would refuse its own image"
expected_report 8 $MiB $MiB 0 1:$(( MiB + 12 * K )) 2:$(( 3 * MiB )) >a.expected
interchange "A zone 0 empty" a.qcow2 $MiB $MiB a.expected 1 $(( 4 * K ))

# B. Zone 0 conventional, capacity 768K of 1M: zone 2 partly written,
# zone 3 full at its capacity, zone 5 finished (pointer at the zone end).
series write b.qcow2 8M 1M capacity=768K conventional=1 max_open=3 \
    max_active=4 wp=2:$(( 2 * MiB + 68 * K )) wp=3:$(( 3 * MiB + 768 * K )) \
    wp=5:$(( 6 * MiB ))
series check b.qcow2 || fail "B: the series would refuse its own image"
expected_report 8 $MiB $(( 768 * K )) 1 2:$(( 2 * MiB + 68 * K )) \
    3:$(( 3 * MiB + 768 * K )) 5:$(( 6 * MiB )) >b.expected
interchange "B zone 0 conventional" b.qcow2 $MiB $(( 768 * K )) b.expected 2 $(( 8 * K ))

# C. 4 KiB zones on 64 KiB clusters: zones share clusters.
series write c.qcow2 256K 4K wp=1:$(( 5 * K )) wp=2:$(( 12 * K )) \
    wp=17:$(( 17 * 4 * K + 2 * K ))
series check c.qcow2 || fail "C: the series would refuse its own image"
expected_report 64 $(( 4 * K )) $(( 4 * K )) 0 1:$(( 5 * K )) \
    2:$(( 12 * K )) 17:$(( 17 * 4 * K + 2 * K )) >c.expected
interchange "C 4K zones" c.qcow2 $(( 4 * K )) $(( 4 * K )) c.expected 17 $K

echo "test-zone-qemu-series: all rows passed"
