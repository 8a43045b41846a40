#!/usr/bin/env bash
# kill -9 at random moments while zones are being written: after each
# crash the image checks clean (leaks allowed, and reported), no zone's
# on-disk write pointer is below what the last FLUSH made durable, every
# byte below it reads back what was written and every byte above it reads
# zeroes; the next round writes on from the recovered pointers.
#
# ZQ_CRASH_ROUNDS (default 50), ZQ_CRASH_SEED, ZQ_CRASH_DEPTH (writes in
# flight; by default 1 and 4 in turn, so that pipelined writes into one
# zone are killed too) and ZQ_CRASH_MAX_DELAY_MS (default 300) change the
# run; scripts/crash-soak runs it long.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires zq-crashwriter qemu-img
plugin_ok
zqimg_ok
scratch_dir

rounds="${ZQ_CRASH_ROUNDS:-50}"
seed="${ZQ_CRASH_SEED:-20250101}"
depths="${ZQ_CRASH_DEPTH:-1 4}"
max_delay_ms="${ZQ_CRASH_MAX_DELAY_MS:-300}"

# Zone 0 conventional, zones 1-6 written, zone 7 never touched.  Four may
# be open at once, so the writer also makes the engine close zones.  The
# capacity is below the zone size: full zones end at start + capacity.
zone_size=$((2 << 20))
capacity=$((1792 << 10))
write_zones="1 2 3 4 5 6"
zoned_create crash.qcow2 16M \
    zone.size=2M,zone.capacity=1792K,zone.conventional_zones=1,zone.max_open_zones=4,zone.max_active_zones=6

sock="$SCRATCH/nbd.sock"
server_pid=
writer_pid=
stop_all ()
{
    [ -z "$server_pid" ] || kill -9 "$server_pid" 2>/dev/null
    [ -z "$writer_pid" ] || kill -9 "$writer_pid" 2>/dev/null
}
cleanup_fn stop_all

RANDOM="$seed"
leaky_rounds=0
total_writes=0
for (( round = 1; round <= rounds; round++ )); do
    # Serve in the background, the writer streams, then kill -9.
    rm -f "$sock"
    nbdkit -f --exit-with-parent -U "$sock" "$PLUGIN" file=crash.qcow2 \
        2>>nbdkit.log &
    server_pid=$!
    for (( i = 0; i < 500; i++ )); do
        [ -S "$sock" ] && break
        kill -0 "$server_pid" 2>/dev/null ||
            { cat nbdkit.log >&2; fail "round $round: nbdkit did not start"; }
        sleep 0.01
    done
    [ -S "$sock" ] || fail "round $round: nbdkit did not create $sock"

    read -r -a depth_list <<<"$depths"
    depth=${depth_list[round % ${#depth_list[@]}]}
    zq-crashwriter write --zone-size $zone_size --capacity $capacity \
        --log crash.log --seed $(( seed * 1000 + round )) --depth "$depth" \
        "nbd+unix:///?socket=$sock" $write_zones > writer.out 2>&1 &
    writer_pid=$!

    delay_ms=$(( 5 + RANDOM % max_delay_ms ))
    sleep "$(( delay_ms / 1000 )).$(printf '%03d' $(( delay_ms % 1000 )))"
    kill -9 "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    writer_status=0
    wait "$writer_pid" || writer_status=$?
    writer_pid=
    case "$writer_status" in
        3) ;;                   # lost the server: the kill
        *) cat writer.out >&2
           fail "round $round: the writer exited $writer_status while the server lived (killed after $delay_ms ms)" ;;
    esac
    writes="$(sed -n 's/.*lost the server after \([0-9]*\) writes.*/\1/p' writer.out)"
    total_writes=$(( total_writes + ${writes:-0} ))

    # The image: consistent.  Leaks are tolerated after a crash (qemu-img
    # does the same): clusters allocated for writes the pointer never
    # covered.  Errors are not.
    check_status=0
    "$ZQCOW2_IMG" check crash.qcow2 > check.out 2>&1 || check_status=$?
    case "$check_status" in
        0) leaks= ;;
        3) leaks="$(grep -io '[0-9]* leaked clusters* were found' check.out)"
           leaks="${leaks:-$(grep -i -m1 leak check.out || true)}"
           leaky_rounds=$(( leaky_rounds + 1 )) ;;
        *) cat check.out >&2
           fail "round $round: zqcow2-img check exited $check_status after kill -9 at $delay_ms ms" ;;
    esac
    qemu_check "round $round" crash.qcow2 > /dev/null

    # The write pointers the file holds.
    zone_report crash.qcow2 > zones.txt
    wps=()
    for z in $write_zones; do
        wps+=("$z=$(awk -v z="$z" '$1 == z { print $5 }' zones.txt)")
    done
    expect_zone "round $round" zones.txt 7 em $(( 7 * zone_size )) > /dev/null
    expect_zone "round $round" zones.txt 0 nw 0 > /dev/null

    # Everything below each pointer reads back, zeroes above.
    if ! zq_nbdkit -r -- file=crash.qcow2 --run \
            "zq-crashwriter verify --zone-size $zone_size --capacity $capacity \
               --log crash.log \"\$uri\" ${wps[*]}" > verify.out 2>&1; then
        cat writer.out verify.out >&2
        fail "round $round: the data does not match what was flushed (killed after $delay_ms ms)"
    fi
    echo "round $round: killed after $delay_ms ms, ${writes:-0} writes; wps ${wps[*]}${leaks:+; $leaks}"
done

echo "test-zone-crash: $rounds crashes survived ($total_writes writes;" \
     "$leaky_rounds rounds with leaked clusters)"
