# Shared by the extended L2 tests: one list of qemu-io operations that
# leaves every kind of subcluster behind, run by qemu-io on an image
# file and, the same list, through the plugin.

# subcluster_ops CLUSTER-BYTES [BASE]: sets the array OPS to qemu-io -c
# arguments from guest offset BASE (default 0) over 14 clusters: patterns
# at subcluster and unaligned offsets, zeroed subclusters and clusters,
# discards, a cluster written all but its last subcluster.
subcluster_ops ()
{
    local cs=$1 sc=$(( $1 / 32 )) b=${2:-0}
    OPS=(
        -c "write -P 0x11 $(( b + sc )) $sc"
        -c "write -P 0x22 $(( b + 5 * sc + 100 )) 1000"
        -c "write -P 0x33 $(( b + cs - 3 )) 7"
        -c "write -P 0x44 $(( b + 2 * cs )) $(( 2 * cs ))"
        -c "write -z $(( b + 2 * cs + 3 * sc )) $(( 4 * sc ))"
        -c "write -z $(( b + 3 * cs )) $cs"
        -c "write -P 0x55 $(( b + 5 * cs + 7 * sc )) $cs"
        -c "discard $(( b + 8 * cs )) $(( 2 * cs ))"
        -c "write -z $(( b + 10 * cs + 17 )) $(( 3 * sc ))"
        -c "write -P 0x66 $(( b + 12 * cs )) $(( 31 * sc ))"
        -c "write -z $(( b + 12 * cs + sc )) $sc"
    )
}

# plugin_ops_cmd: a --run command that applies OPS through the plugin.
plugin_ops_cmd ()
{
    printf 'qemu-io -f raw "$uri" '
    printf '%q ' "${OPS[@]}"
    printf '>/dev/null'
}
