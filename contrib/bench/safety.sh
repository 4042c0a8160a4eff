#!/usr/bin/env bash
# What the safety machinery costs a pass: the lock, and for every removal an exact inspect
# appended to the audit log and synced to disk before the container goes.
#
#   contrib/bench/safety.sh                       # TRIALS=10, N=10
#   BASELINE=path/to/older/guestlist contrib/bench/safety.sh
#
# Measures, alternating the binaries trial by trial when BASELINE is given:
#   in-sync   `enforce` over N allowed containers that need nothing (the lock, no audit)
#   removal   `enforce --stop-timeout 0` removing N extra containers (N audit records + fsync)
#   docker    `docker rm -f` of N containers at once, the engine's own floor for the removal
# Prints the median wall time of each in milliseconds.
# Needs: docker, awk, and busybox (busybox-static) unless $IMAGE already exists.
set -euo pipefail

TRIALS=${TRIALS:-10}
N=${N:-10}
IMAGE=${IMAGE:-guestlist-bench:1}
cd "$(dirname "$0")/../.."
GUESTLIST=${GUESTLIST:-target/release/guestlist}
[[ -x $GUESTLIST ]] || cargo build --release --quiet
BASELINE=${BASELINE:-}

RUN_ID="glsafety$$"
WORK=$(mktemp -d)
cleanup() {
    ids=$(docker ps -aq --filter "label=bench.run=$RUN_ID")
    [[ -n $ids ]] && docker rm -f -v $ids >/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    busybox=$(command -v busybox || true)
    [[ -n $busybox ]] || { echo "bench: install busybox-static, or set IMAGE" >&2; exit 2; }
    mkdir -p "$WORK/root/bin"
    cp "$busybox" "$WORK/root/bin/busybox"
    for applet in sh sleep; do ln -s busybox "$WORK/root/bin/$applet"; done
    tar -C "$WORK/root" -c . | docker import --change 'CMD ["sleep", "3600"]' - "$IMAGE" >/dev/null
fi

scoped=(--label "bench.run=$RUN_ID")
for i in $(seq "$N"); do
    docker run -d --name "$RUN_ID-allowed-$i" "${scoped[@]}" "$IMAGE" >/dev/null
done
export GUESTLIST_STATE="$WORK/state.json" GUESTLIST_AUDIT_LOG="$WORK/audit.jsonl"
"$GUESTLIST" snapshot --scope "label=bench.run=$RUN_ID" >/dev/null

now_ms() { date +%s%3N; }
extras() {
    for i in $(seq "$N"); do
        echo "--name $RUN_ID-extra-$i"
    done | xargs -P "$N" -I{} sh -c "docker run -d {} ${scoped[*]} $IMAGE >/dev/null"
}
# time_ms COMMAND...: wall time of one run, in ms, on stdout.
time_ms() {
    local start end
    start=$(now_ms)
    "$@" >/dev/null
    end=$(now_ms)
    echo $((end - start))
}

binaries=("$GUESTLIST")
[[ -n $BASELINE ]] && binaries+=("$BASELINE")
declare -A samples
for trial in $(seq "$TRIALS"); do
    for bin in "${binaries[@]}"; do
        samples["in-sync $bin"]+="$(time_ms "$bin" enforce) "
        extras
        samples["removal $bin"]+="$(time_ms "$bin" enforce --stop-timeout 0) "
    done
    extras
    ids=$(docker ps -q --filter "name=$RUN_ID-extra-")
    samples["docker"]+="$(time_ms docker rm -f $ids) "
    echo "trial $trial/$TRIALS done" >&2
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "N=$N, $TRIALS trials, median wall time in ms"
for key in "${!samples[@]}"; do
    printf '%-60s %6s\n' "$key" "$(echo "${samples[$key]}" | median)"
done | sort
echo "audit log after the run: $(wc -l <"$WORK/audit.jsonl") records, $(du -k "$WORK/audit.jsonl" | cut -f1) KiB"
