#!/usr/bin/env bash
# When the image file cannot grow (a full disk; here a file size limit,
# which fails writes with EFBIG the same way), the write fails with an
# error naming the image and the offset, nbdkit keeps serving, what was
# written before still reads back, and the image stays consistent.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io nbdkit
plugin_ok
scratch_dir

qemu-img create -q -f qcow2 -o cluster_size=64k img.qcow2 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 256k' img.qcow2 >/dev/null
size_before=$(stat -c %s img.qcow2)

# 1 MiB more than the file has now: a 4 MiB write cannot fit, 64k can.
limit_kib=$(( size_before / 1024 + 1024 ))
(
    trap '' XFSZ                # writes past the limit fail with EFBIG
    ulimit -f "$limit_kib"
    zq_nbdkit -- file=img.qcow2 --run '
        qemu-io -f raw "$uri" -c "write -P 0x22 8M 4M" > big.out 2>&1
        echo "big write: $?" > big.status
        qemu-io -f raw "$uri" -c "write -P 0x33 1M 64k" -c "read -P 0x11 0 256k" \
            -c "read -P 0 8M 4M" -c "read -P 0x33 1M 64k" > small.out 2>&1
    '
) > nbdkit.out 2> nbdkit.err || fail "nbdkit did not keep serving: $(cat nbdkit.err)"

grep -q "write failed" big.out ||
    fail "the write past the size limit did not fail: $(cat big.out)"
grep -Eq "img\.qcow2: writing guest offset 0x[0-9a-f]+ .*(too large|No space)" \
    nbdkit.err || fail "no message naming the image and offset: $(cat nbdkit.err)"
if grep -q "failed\|Pattern" small.out; then
    fail "after the failed write, I/O within the limit failed: $(cat small.out)"
fi
echo "ok      a write past the limit failed with a clear message; later I/O works"

out="$(qemu-img check img.qcow2 2>&1)" || fail "qemu-img check after the failed write: $out"
echo "ok      qemu-img check: $(head -1 <<<"$out")"
out="$(qemu-io -f qcow2 -c 'read -P 0x11 0 256k' -c 'read -P 0x33 1M 64k' \
          -c 'read -P 0 8M 4M' img.qcow2 2>&1)" ||
    fail "qemu-io could not read the image back: $out"
! grep -q "Pattern verification failed" <<<"$out" ||
    fail "the image's data is not what was written: $out"
echo "ok      qemu reads back what was written and zeroes where the write failed"
