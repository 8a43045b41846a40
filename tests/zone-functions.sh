# zqcow2 zone tests: helpers shared by tests/test-zone-*.sh.  Source after
# functions.sh:
#   source "$(dirname "$0")/functions.sh"
#   source "$(dirname "$0")/zone-functions.sh"

: "${ZQCOW2_IMG:=}"

# zqimg_ok: find the built zqcow2-img (by path) or skip; the zone report
# is JSON, read with jq.
zqimg_ok ()
{
    if [ -z "$ZQCOW2_IMG" ]; then
        if [ -n "$abs_top_builddir" ]; then
            ZQCOW2_IMG="$abs_top_builddir/tools/zqcow2-img"
        else
            ZQCOW2_IMG="$_zq_testdir/../tools/zqcow2-img"
        fi
    fi
    [ -x "$ZQCOW2_IMG" ] || skip "zqcow2-img not built: $ZQCOW2_IMG"
    requires jq
}

# zoned_create IMG SIZE ZONE-OPTIONS: a host-managed zoned image, e.g.
#   zoned_create a.qcow2 16M zone.size=1M,zone.conventional_zones=2
zoned_create ()
{
    rm -f "$1"
    "$ZQCOW2_IMG" create -o "zone.mode=host-managed,$3" "$1" "$2" >/dev/null ||
        fail "zqcow2-img create -o zone.mode=host-managed,$3 $1 $2 failed"
}

# zone_report IMG: one line per zone, "INDEX START LEN CAP WP COND", from
# "zqcow2-img zones --output=json", numbers in bytes, COND as blkzone
# abbreviates it (nw em oi oe cl ro fu of).
zone_report ()
{
    local json
    json="$("$ZQCOW2_IMG" zones --output=json "$1")" ||
        fail "zqcow2-img zones --output=json $1 failed"
    jq -r '
      def cond:
        if type == "number" then
          {"0":"nw","1":"em","2":"oi","3":"oe","4":"cl","13":"ro",
           "14":"fu","15":"of"}[tostring] // "?"
        else
          ascii_downcase | gsub("[-_ ]"; "") |
          {"nw":"nw","notwp":"nw","notwritepointer":"nw","conventional":"nw",
           "em":"em","empty":"em",
           "oi":"oi","impopen":"oi","implicitopen":"oi","implicitlyopen":"oi",
           "oe":"oe","expopen":"oe","explicitopen":"oe","explicitlyopen":"oe",
           "cl":"cl","closed":"cl","ro":"ro","readonly":"ro",
           "fu":"fu","full":"fu","of":"of","ol":"of","offline":"of"}[.] // .
        end;
      (if type == "array" then . else .zones end)
      | to_entries[]
      | (.value.zone // .key) as $i | .value
      | "\($i) \(.start) \(.length // .len) \(.capacity // .cap) \(."write-pointer" // .wptr) \(."condition-code" // .condition // .cond | cond)"
    ' <<<"$json" || fail "cannot read the zone report of $1: $json"
}

# expect_zone ROW REPORT ZONE COND WP [CAP [LEN]]: the zone's line of a
# saved zone_report must show this condition and write pointer (absolute
# bytes), and capacity and length if given.
expect_zone ()
{
    local row="$1" report="$2" zone="$3" cond="$4" wp="$5"
    local cap="${6:-}" len="${7:-}" line
    line="$(awk -v z="$zone" '$1 == z' "$report")"
    [ -n "$line" ] || fail "$row: zone $zone is missing from the zone report"
    set -- $line
    if [ "$6" != "$cond" ] || [ "$5" != "$wp" ] ||
       { [ -n "$cap" ] && [ "$4" != "$cap" ]; } ||
       { [ -n "$len" ] && [ "$3" != "$len" ]; }; then
        fail "$row: zone $zone: expected cond $cond wp $wp${cap:+ cap $cap}${len:+ len $len}, the report says cond $6 wp $5 cap $4 len $3"
    fi
    echo "ok      $row: zone $zone is $cond, wp $wp${cap:+, cap $cap}${len:+, len $len}"
}

# zoned_check ROW IMG: zqcow2-img check must find nothing wrong.
zoned_check ()
{
    local out status=0
    out="$("$ZQCOW2_IMG" check "$2" 2>&1)" || status=$?
    if [ "$status" -ne 0 ]; then
        printf '%s\n' "$out" >&2
        fail "$1: zqcow2-img check $2 exited $status"
    fi
    echo "ok      $1: zqcow2-img check $2 is clean"
}

# qemu_view IMG COPY: COPY is IMG with incompatible feature bit 5 (zoned)
# cleared, so that qemu-img accepts it; qemu then sees the data clusters
# and ignores the zone extension and write pointers.
qemu_view ()
{
    local features
    cp --sparse=always "$1" "$2"
    features="$(peek_be "$2" 72 8)"
    poke_be "$2" 72 8 $(( features & ~(1 << 5) ))
}

# qemu_check_view ROW IMG: qemu-img check of a qemu_view copy of IMG;
# its report in qemu_check_out.  Fails unless it exited 0, or 3 (leaks).
qemu_check_view ()
{
    local status=0
    requires qemu-img
    qemu_view "$2" "$2.qemu"
    qemu_check_out="$(qemu-img check -f qcow2 "$2.qemu" 2>&1)" || status=$?
    rm -f "$2.qemu"
    case "$status" in
        0|3) ;;
        *) printf '%s\n' "$qemu_check_out" >&2
           fail "$1: qemu-img check on a copy of $2 without bit 5 exited $status" ;;
    esac
}

# qemu_check ROW IMG: qemu-img check on a qemu_view copy of IMG finds no
# corruption.  Leaks are allowed (exit 3): qemu does not know that the
# write-pointer table's clusters are in use, and after a crash others
# may be leaked too.
qemu_check ()
{
    qemu_check_view "$1" "$2"
    if grep -qi corrupt <<<"$qemu_check_out"; then
        printf '%s\n' "$qemu_check_out" >&2
        fail "$1: qemu-img check reports corruption in $2"
    fi
    echo "ok      $1: qemu-img check finds no corruption in $2"
}

# qemu_check_exact ROW IMG: qemu-img check on a qemu_view copy of IMG
# finds no errors, and as leaks exactly the write-pointer table's
# clusters (qemu cannot know they are in use), nothing more.
qemu_check_exact ()
{
    local ext table tsize cs leaked expected="" i
    qemu_check_view "$1" "$2"
    ext="$(zoned_ext_offset "$2")" || fail "$1: $2 has no zoned extension"
    table="$(peek_be "$2" $(( ext + 48 )) 8)"
    tsize="$(peek_be "$2" $(( ext + 40 )) 8)"
    cs=$(( 1 << $(peek_be "$2" 20 4) ))
    for (( i = table / cs; i < (table + tsize + cs - 1) / cs; i++ )); do
        expected+="$i "
    done
    leaked="$(sed -n 's/^Leaked cluster \([0-9]*\) refcount=1 reference=0$/\1/p' \
              <<<"$qemu_check_out" | sort -n | tr '\n' ' ')"
    if grep -q "ERROR" <<<"$qemu_check_out" ||
       grep -qi "corrupt" <<<"$qemu_check_out" ||
       [ "$leaked" != "$expected" ]; then
        printf '%s\n' "$qemu_check_out" >&2
        fail "$1: qemu-img check of $2 without bit 5: expected no errors and leaks '$expected' (the write-pointer table), got leaks '$leaked'"
    fi
    echo "ok      $1: qemu-img check finds no errors in $2, only the table's clusters as leaks"
}

# zoned_ext_offset IMG: the file offset of the zoned extension's payload
# (header extension 0x007a6264), found by walking the header extensions.
zoned_ext_offset ()
{
    local off magic len
    off="$(peek_be "$1" 100 4)"            # header_length
    while :; do
        magic="$(peek_be "$1" "$off" 4)"
        len="$(peek_be "$1" $(( off + 4 )) 4)"
        [ "$magic" -ne 0 ] || return 1
        if [ "$magic" -eq $(( 0x007a6264 )) ]; then
            echo $(( off + 8 ))
            return 0
        fi
        off=$(( off + 8 + (len + 7) / 8 * 8 ))
    done
}

# set_disk_wp IMG ZONE WP: overwrite zone ZONE's write-pointer entry in
# the file (the image must not be in use).
set_disk_wp ()
{
    local ext table
    ext="$(zoned_ext_offset "$1")" || fail "$1 has no zoned extension"
    table="$(peek_be "$1" $(( ext + 48 )) 8)"
    poke_be "$1" $(( table + 8 * $2 )) 8 "$3"
}
