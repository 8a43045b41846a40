#!/usr/bin/env bash
# A zoned image with the lazy_refcounts bit: served like any other, the
# engine keeps refcounts current, so even a kill -9 leaves the image
# without the dirty bit and with nothing for zqcow2-img check to find.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires qemu-io nbdkit
plugin_ok
zqimg_ok
scratch_dir

MiB=$(( 1 << 20 ))
rm -f img.qcow2
"$ZQCOW2_IMG" create -q \
    -o lazy_refcounts=on,zone.mode=host-managed,zone.size=1M img.qcow2 8M ||
    fail "zqcow2-img create with lazy_refcounts=on failed"
[ $(( $(peek_be img.qcow2 80 8) & 1 )) -eq 1 ] ||
    fail "the lazy_refcounts compatible bit is not set"

zq_nbdkit -- file=img.qcow2 --run '
    qemu-io -f raw "$uri" -c "write -P 5 1M 64k" -c "write -P 6 1114112 64k" \
        -c "write -P 7 2M 4k" -c "discard 2M 1M" -c "write -P 8 3M 8k" \
        -c "flush"
' >/dev/null 2>&1 || fail "writing zones 1-3 failed"
zone_report img.qcow2 > report
expect_zone "lazy" report 1 cl $(( MiB + 128 * 1024 ))
expect_zone "lazy" report 2 em $(( 2 * MiB ))
expect_zone "lazy" report 3 cl $(( 3 * MiB + 8192 ))
zoned_check "lazy" img.qcow2

# Killed after unflushed writes: never dirty, check clean.
nbdkit -f -U sock.tmp -P pid "$PLUGIN" file=img.qcow2 > /dev/null 2>&1 &
for i in $(seq 100); do [ -S sock.tmp ] && break; sleep 0.1; done
[ -S sock.tmp ] || fail "nbdkit did not start"
qemu-io -f raw 'nbd+unix:///?socket=sock.tmp' \
    -c "write -P 9 3153920 64k" -c "write -P 9 4M 256k" >/dev/null 2>&1
kill -9 "$(cat pid)"
wait 2>/dev/null
[ $(( $(peek_be img.qcow2 72 8) & 1 )) -eq 0 ] ||
    fail "the image is dirty after a kill"
zoned_check "lazy after kill -9" img.qcow2
echo "ok      lazy after kill -9: not dirty, check clean"
