#!/usr/bin/env bash
# The cost of the two request shapes that create a container on three networks, against the
# engine at DOCKER_HOST (a unix:// socket; API 1.44 or later for `all`):
#
#   contrib/bench/network-shape.sh connect   # create on one network, connect two, start
#   contrib/bench/network-shape.sh all       # create on all three at once, start
#
# One run creates, starts and removes 10 such containers one after another, as a pass
# recreating them would (guestlist sends the `connect` shape on every version). Time the two
# with farm-bench:
#
#   farm-bench --vs 'contrib/bench/network-shape.sh all' -- contrib/bench/network-shape.sh connect
#
# Needs curl and an image named by $IMAGE (default guestlist-test:1, which the tests import).
set -euo pipefail
shape=${1:?connect or all}
socket=${DOCKER_HOST:-unix:///var/run/docker.sock}
socket=${socket#unix://}
image=${IMAGE:-guestlist-test:1}
api() { curl -sf --unix-socket "$socket" -H 'Content-Type: application/json' "$@"; }
for n in a b c; do
  api -o /dev/null "http://engine/networks/gl-shape-$n" ||
    api -o /dev/null -X POST -d "{\"Name\": \"gl-shape-$n\"}" http://engine/networks/create
done
for i in $(seq 1 10); do
  name=gl-shape-$$-$i
  case $shape in
    connect)
      api -o /dev/null -X POST -d "{\"Image\": \"$image\", \"Cmd\": [\"sleep\", \"60\"],
        \"HostConfig\": {\"NetworkMode\": \"gl-shape-a\"},
        \"NetworkingConfig\": {\"EndpointsConfig\": {\"gl-shape-a\": {}}}}" \
        "http://engine/containers/create?name=$name"
      for n in b c; do
        api -o /dev/null -X POST -d "{\"Container\": \"$name\"}" \
          "http://engine/networks/gl-shape-$n/connect"
      done ;;
    all)
      api -o /dev/null -X POST -d "{\"Image\": \"$image\", \"Cmd\": [\"sleep\", \"60\"],
        \"HostConfig\": {\"NetworkMode\": \"gl-shape-a\"},
        \"NetworkingConfig\": {\"EndpointsConfig\": {\"gl-shape-a\": {}, \"gl-shape-b\": {},
        \"gl-shape-c\": {}}}}" "http://engine/containers/create?name=$name" ;;
    *) echo "network-shape.sh: connect or all, not $shape" >&2; exit 2 ;;
  esac
  api -o /dev/null -X POST "http://engine/containers/$name/start"
  api -o /dev/null -X DELETE "http://engine/containers/$name?force=true"
done
