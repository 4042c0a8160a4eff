#!/usr/bin/env bash
# Build the guestlist container image as guestlist:local from this source tree, with no
# registry: a statically linked binary in a FROM scratch image needs nothing pulled.
#
#   contrib/docker/build.sh              # release build; PROFILE=dev for a quicker debug one
#   TAG=guestlist:1.0 contrib/docker/build.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

TAG=${TAG:-guestlist:local}
PROFILE=${PROFILE:-release}
TARGET=$(rustc -vV | sed -n 's/^host: //p')
# Its own target directory: the static flags would otherwise invalidate the everyday build.
export CARGO_TARGET_DIR=${STATIC_TARGET_DIR:-target/static}
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --locked \
    --profile "$PROFILE" --target "$TARGET"
dir=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
binary="$CARGO_TARGET_DIR/$TARGET/$dir/guestlist"

# glibc's ldd says "statically linked" (static-pie) or "not a dynamic executable".
if ! ldd "$binary" 2>&1 | grep -qE 'statically linked|not a dynamic executable'; then
    echo "build.sh: $binary is not statically linked" >&2
    exit 1
fi

# The trusted roots for HTTPS notifications (--notify): a FROM scratch image has none.
roots=/etc/ssl/certs/ca-certificates.crt
if [ ! -s "$roots" ]; then
    echo "build.sh: $roots is missing; install Debian's ca-certificates" >&2
    exit 1
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/guestlist"
cp "$roots" "$context/ca-certificates.crt"
docker build --quiet --tag "$TAG" --file contrib/docker/Dockerfile "$context" >/dev/null
echo "built $TAG ($(du -h "$binary" | cut -f1) binary, $PROFILE)"
