#!/usr/bin/env bash
# Reaction latencies of `guestlist watch` on this machine, next to Docker's own restart policy
# measured in the same run, plus watch's idle CPU and memory.
#
#   contrib/bench/watch.sh            # TRIALS=15 by default; GUESTLIST=path/to/binary
#
# Every latency comes from the engine's own event timestamps (one clock), recorded by a
# `docker events` reader that runs for the whole benchmark:
#   extra     an extra container's start (its create, if it never got to start) -> its destroy
#   crashed   an allowed container exits by itself -> it runs again (same container)
#   deleted   `docker rm -f` of an allowed container -> its replacement starts
#   baseline  a --restart=always container exits by itself -> Docker restarts it
# Each trial uses its own container, so the crash-loop backoff never delays a trial.
# Needs: docker, awk, and busybox (busybox-static) unless $IMAGE already exists.
set -euo pipefail

TRIALS=${TRIALS:-15}
IMAGE=${IMAGE:-guestlist-bench:1}
IDLE_SECONDS=${IDLE_SECONDS:-10}
cd "$(dirname "$0")/../.."
GUESTLIST=${GUESTLIST:-target/release/guestlist}
[[ -x $GUESTLIST ]] || cargo build --release --quiet

RUN_ID="glbench$$"
WORK=$(mktemp -d)
WATCH_PID=""
EVENTS_PID=""
cleanup() {
    [[ -n $WATCH_PID ]] && kill "$WATCH_PID" 2>/dev/null || true
    [[ -n $EVENTS_PID ]] && kill "$EVENTS_PID" 2>/dev/null || true
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

# Exits 1 on SIGUSR1 from inside: a crash, not a stop (Docker treats `docker kill` as a manual
# stop and would not restart it).
CRASHABLE=(sh -c 'trap "exit 1" USR1; while :; do sleep 1 & wait $!; done')
scoped=(--label "bench.run=$RUN_ID" --label "bench.scope=$RUN_ID")
# The exec may itself be killed (137) when the container exits under it: that is the crash.
crash() { docker exec "$1" sh -c 'kill -USR1 1' || true; }

for i in $(seq "$TRIALS"); do
    docker run -d --name "$RUN_ID-crashed-$i" "${scoped[@]}" "$IMAGE" "${CRASHABLE[@]}" >/dev/null
    docker run -d --name "$RUN_ID-deleted-$i" "${scoped[@]}" "$IMAGE" "${CRASHABLE[@]}" >/dev/null
    docker run -d --name "$RUN_ID-baseline-$i" --label "bench.run=$RUN_ID" --restart=always \
        "$IMAGE" "${CRASHABLE[@]}" >/dev/null
done
export GUESTLIST_STATE="$WORK/state.json"
"$GUESTLIST" snapshot --scope "label=bench.scope=$RUN_ID" >/dev/null

docker events --filter "label=bench.run=$RUN_ID" --filter type=container \
    --format '{{.TimeNano}} {{.Action}} {{.Actor.Attributes.name}}' >"$WORK/events" &
EVENTS_PID=$!
"$GUESTLIST" watch --stop-timeout 0 2>"$WORK/watch.log" &
WATCH_PID=$!
sleep 2

echo "bench: $TRIALS trials each; watch pid $WATCH_PID" >&2
for i in $(seq "$TRIALS"); do
    docker run -d --name "$RUN_ID-extra-$i" "${scoped[@]}" "$IMAGE" >/dev/null 2>&1 || true
    sleep 1
done
for i in $(seq "$TRIALS"); do crash "$RUN_ID-crashed-$i"; sleep 1; done
for i in $(seq "$TRIALS"); do docker rm -f "$RUN_ID-deleted-$i" >/dev/null; sleep 1; done
for i in $(seq "$TRIALS"); do crash "$RUN_ID-baseline-$i"; sleep 1; done
sleep 1

# Idle: no events, no resync due (5 min): CPU ticks spent and resident memory.
ticks() { awk '{print $14 + $15}' "/proc/$WATCH_PID/stat"; }
before=$(ticks)
sleep "$IDLE_SECONDS"
idle_ticks=$(( $(ticks) - before ))
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$WATCH_PID/status")
peak_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$WATCH_PID/status")
kill "$EVENTS_PID"; EVENTS_PID=""
term_start=$(date +%s%N)
kill -TERM "$WATCH_PID"
wait "$WATCH_PID" && term_status=0 || term_status=$?
term_ms=$(( ($(date +%s%N) - term_start) / 1000000 ))
WATCH_PID=""

# Latencies in ms per scenario, from the event log.
awk -v run="$RUN_ID-" '
    { t = $1 / 1e6; action = $2; name = $3; sub(run, "", name); split(name, p, "-"); kind = p[1] }
    kind == "extra" && action == "create"  { born[name] = t }
    kind == "extra" && action == "start"   { born[name] = t }
    kind == "extra" && action == "destroy" && (name in born) { print "extra", t - born[name]; delete born[name] }
    kind != "extra" && action == "die"     { if (!(name in died)) died[name] = t }
    kind != "extra" && action == "start" && (name in died) { print kind, t - died[name]; delete died[name] }
' "$WORK/events" | sort -k1,1 -k2,2n >"$WORK/latencies"

summary() {
    awk -v kind="$1" '$1 == kind { v[n++] = $2 }
        END {
            if (n == 0) { printf "%-9s no samples\n", kind; exit }
            med = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
            p90 = int(n * 0.9); if (p90 >= n) p90 = n - 1
            printf "%-9s n=%-3d median %6.0f ms   min %6.0f   p90 %6.0f   max %6.0f\n",
                kind, n, med, v[0], v[p90], v[n - 1]
        }' "$WORK/latencies"
}
echo "reaction latency (engine event timestamps)"
for kind in extra crashed deleted baseline; do summary "$kind"; done
echo "idle: $idle_ticks CPU ticks in ${IDLE_SECONDS}s; RSS $((rss_kb / 1024)) MiB (peak $((peak_kb / 1024)) MiB)"
errors=$(grep -c -E ' WARN | ERROR ' "$WORK/watch.log" || true)
echo "SIGTERM: exit $term_status after $term_ms ms"
echo "watch log: $(wc -l <"$WORK/watch.log") lines, $errors warnings"
[[ $errors -eq 0 ]] || grep -E ' WARN | ERROR ' "$WORK/watch.log" | head -5 >&2
