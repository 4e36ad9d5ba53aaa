#!/usr/bin/env bash
# End-to-end check of the container deployment (slow; not part of `make test`):
#   1. build the image (docker/Dockerfile) as cbir:latest
#   2. generate a small folder of images (plus one unreadable file) with the image's own Python
#   3. `compose --profile index run --rm indexer`: build the index into the named volume
#   4. add two images and run the indexer again: only those two are embedded
#   5. `compose up -d api`; time container start -> GET /readyz 200; run the image's healthcheck
#   6. POST /search with curl and check the JSON; GET /stats, /images/{id}/file; writes refused
#   7. live update: two more images and the indexer again *while the api serves*; the api (no
#      CBIR_API_KEY: read-only, following the index) finds them within a few seconds, no restart
#   8. `compose down -v` and remove the folder (KEEP=1 keeps everything for a look)
# Any failure ends with a "SMOKE FAILED" line on stderr and a non-zero exit.
#
# Usage: docker/smoke.sh     (from anywhere; needs curl and python3 on the host)
# Env:   ENGINE        docker | podman (default: docker when its engine answers, else podman)
#        COMPOSE       the compose command (default: `docker compose`, else podman-compose)
#        SKIP_BUILD=1  use the cbir:latest already there
#        WEIGHTS_FILE  a squeezenet1_1 state dict to mount (default: ../shared/weights/
#                      squeezenet1_1_imagenet.pth when present, else --weights random)
#        BASE_IMAGE, WHEELHOUSE (default docker/wheels when it holds a torch wheel),
#        TORCH_VARIANT, FETCH_WEIGHTS: passed to the build;  API_PORT (default 18000)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
cd "$ROOT"
export API_PORT="${API_PORT:-18000}"
PROJECT="cbir-smoke-$$"
IMAGE=cbir:latest
URL="http://127.0.0.1:$API_PORT"

step() { printf '\n=== %s\n' "$*"; }
fail() { echo "SMOKE FAILED: $*" >&2; exit 1; }
# Until the full clean-up below is installed (a failed build, a missing engine...).
trap 'rc=$?; [ "$rc" = 0 ] || echo "SMOKE FAILED (exit $rc)" >&2' EXIT

# --- engine and compose ---------------------------------------------------------------------
if [ -z "${ENGINE:-}" ]; then
    ENGINE=podman
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker; fi
fi
if [ -z "${COMPOSE:-}" ]; then
    if [ "$ENGINE" = docker ]; then COMPOSE="docker compose"; else COMPOSE=podman-compose; fi
fi
$COMPOSE --help 2>&1 | grep -q -- --profile \
    || fail "$COMPOSE has no --profile (Debian's podman-compose 1.0.3; setup-podman.sh installs one)"
echo "engine: $ENGINE ($($ENGINE --version)); compose: $COMPOSE"

# --- 1. build -------------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    args=(build -f docker/Dockerfile -t "$IMAGE")
    if [ "$ENGINE" = podman ]; then
        # keep HEALTHCHECK (docker format); podman reads <Dockerfile>.dockerignore only when told
        args+=(--format docker --ignorefile docker/Dockerfile.dockerignore)
        ca=/etc/ssl/certs/ca-certificates.crt  # this host's CA bundle, for pip behind a proxy
        [ -f "$ca" ] && args+=(-v "$ca:$ca:ro")
    fi
    if [ -z "${WHEELHOUSE+set}" ] && compgen -G "docker/wheels/torch-*.whl" >/dev/null; then
        WHEELHOUSE=docker/wheels
    fi
    for name in BASE_IMAGE WHEELHOUSE TORCH_VARIANT FETCH_WEIGHTS; do
        [ -n "${!name:-}" ] && args+=(--build-arg "$name=${!name}")
    done
    step "build: $ENGINE ${args[*]} ."
    start=$(date +%s)
    $ENGINE "${args[@]}" .
    echo "build took $(( $(date +%s) - start )) s"
fi
size=$($ENGINE image inspect "$IMAGE" --format '{{.Size}}')
echo "image $IMAGE: $size bytes ($(( size / 1000000 )) MB)"

# --- 2. images ------------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/cbir-smoke.XXXXXX")"
export IMAGES_DIR="$WORK/images"
mkdir -p "$IMAGES_DIR"
chmod 755 "$WORK" "$IMAGES_DIR"
if [ -z "${WEIGHTS_FILE+set}" ] && [ -f "$ROOT/../shared/weights/squeezenet1_1_imagenet.pth" ]; then
    WEIGHTS_FILE="$ROOT/../shared/weights/squeezenet1_1_imagenet.pth"
fi
if [ -n "${WEIGHTS_FILE:-}" ]; then
    export WEIGHTS_DIR="$(cd "$(dirname "$WEIGHTS_FILE")" && pwd)"
    export INDEX_WEIGHTS="/weights/$(basename "$WEIGHTS_FILE")"
else
    export WEIGHTS_DIR="$WORK/weights" INDEX_WEIGHTS=random
    mkdir -p "$WEIGHTS_DIR"
fi
export INDEX_BACKBONE=squeezenet1_1 INDEX_POOLING=gem
echo "weights: $INDEX_WEIGHTS (from $WEIGHTS_DIR)"

compose() { $COMPOSE -p "$PROJECT" -f docker/compose.yml "$@"; }
cleanup() {
    local rc=$?
    if [ "${KEEP:-0}" = 1 ]; then
        echo "KEEP=1: left project $PROJECT and $WORK (IMAGES_DIR=$IMAGES_DIR)"
    else
        step "tear down"
        compose --profile index down -v >/dev/null 2>&1 || echo "compose down failed" >&2
        $ENGINE run --rm --user 0 --entrypoint rm -v "$WORK:/work" "$IMAGE" -rf /work/images \
            >/dev/null 2>&1 || true
        rm -rf "$WORK"
    fi
    [ "$rc" = 0 ] && echo "SMOKE PASSED" || echo "SMOKE FAILED (exit $rc)" >&2
}
trap cleanup EXIT

generate() {  # generate FIRST COUNT: synthetic photos img_FIRST.jpg ... in $IMAGES_DIR
    $ENGINE run --rm --user 0 --network none --entrypoint python -v "$IMAGES_DIR:/out" "$IMAGE" -c '
import sys, numpy as np
from PIL import Image, ImageDraw
first, count = int(sys.argv[1]), int(sys.argv[2])
for seed in range(first, first + count):
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (160, 120), tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x, y = (int(v) for v in rng.integers(0, 120, 2))
        draw.ellipse((x, y, x + 40, y + 30), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    img.save(f"/out/img_{seed:02d}.jpg", quality=90)
' "$1" "$2"
}
step "generate 12 images and one unreadable file in $IMAGES_DIR"
generate 0 12
echo "not an image" > "$IMAGES_DIR/broken.jpg"
ls "$IMAGES_DIR" | tr '\n' ' '; echo

# --- 3. index -------------------------------------------------------------------------------
step "index: compose --profile index run --rm indexer"
out=$(compose --profile index run --rm indexer 2>&1) || { echo "$out"; fail "indexer failed"; }
echo "$out" | tail -n 5
echo "$out" | grep -q "indexed 12 images" || fail "expected 12 images indexed"
echo "$out" | grep -q "skipped 1 unreadable" || fail "expected broken.jpg skipped"

# --- 4. update ------------------------------------------------------------------------------
step "update: two new images, the indexer again"
generate 12 2
out=$(compose --profile index run --rm indexer 2>&1) || { echo "$out"; fail "indexer update failed"; }
echo "$out" | tail -n 3
echo "$out" | grep -q "indexed 2 images" || fail "expected only the 2 new images embedded"

# --- 5. serve -------------------------------------------------------------------------------
# podman-compose (1.6) ignores `required: false` and fails on the api's dependency on the
# profile-disabled indexer: with podman the profile is on, so the api waits for an indexer run.
up=(up -d api)
[[ "$COMPOSE" == *podman-compose* ]] && up=(--profile index up -d api)
step "serve: compose ${up[*]}"
compose "${up[@]}"
cid=$($ENGINE ps -q --filter "label=com.docker.compose.project=$PROJECT" \
      --filter "label=com.docker.compose.service=api" | head -n 1)
[ -n "$cid" ] || fail "no api container"
started=$($ENGINE inspect -f '{{.State.StartedAt}}' "$cid")
ready=""
for _ in $(seq 1 900); do
    if curl -sf -o /dev/null "$URL/readyz"; then ready=$(date +%s.%N); break; fi
    $ENGINE inspect -f '{{.State.Running}}' "$cid" | grep -q true || break
    sleep 0.2
done
[ -n "$ready" ] || { compose logs api | tail -n 30; fail "api never became ready"; }
t0=$(date -d "$(echo "$started" | sed -E 's/ [A-Z]+$//')" +%s.%N)
echo "cold start (container start -> /readyz 200): $(python3 -c "print(f'{$ready - $t0:.1f}')") s"
if [ "$ENGINE" = podman ]; then
    podman healthcheck run "$cid" && echo "healthcheck: healthy"  # no systemd timers here
else
    for _ in $(seq 1 60); do
        [ "$(docker inspect -f '{{.State.Health.Status}}' "$cid")" = healthy ] && break; sleep 2
    done
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$cid")" = healthy ] || fail "not healthy"
    echo "healthcheck: healthy"
fi

# --- 6. query -------------------------------------------------------------------------------
step "query: curl -F image=@img_03.jpg $URL/search?k=5"
json=$(curl -sS --fail-with-body -F "image=@$IMAGES_DIR/img_03.jpg" "$URL/search?k=5") \
    || fail "search failed: $json"
echo "$json" | head -c 600; echo
echo "$json" | python3 -c '
import json, sys
body = json.load(sys.stdin)
hits = body["results"]
assert len(hits) == 5, hits
assert hits[0]["path"] == "img_03.jpg", hits[0]  # relative to the indexed folder
assert hits[0]["score"] >= hits[-1]["score"] and abs(hits[0]["score"] - 1) < 1e-3, hits
assert all(h["url"] == "/images/%d/file" % h["id"] for h in hits), hits
print("search JSON ok: best hit is the query itself, score", round(hits[0]["score"], 4))
' || fail "unexpected search JSON"
curl -sS -f "$URL/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["count"] == 14 and s["searchable"] == 14 and not s["writes_enabled"], s
print("stats ok:", s["count"], "images,", s["manifest"]["backbone"], s["manifest"]["weights"][:24])
' || fail "unexpected /stats"
first=$(echo "$json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["results"][0]["url"])')
curl -sS -f -o "$WORK/file.jpg" "$URL$first" && cmp -s "$WORK/file.jpg" "$IMAGES_DIR/img_03.jpg" \
    || fail "GET $first did not return the image"
echo "GET $first: the original file"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$URL/images/1")
[ "$code" = 403 ] || fail "DELETE without CBIR_API_KEY answered $code, expected 403"
echo "DELETE without CBIR_API_KEY: 403"

# --- 7. live update -------------------------------------------------------------------------
step "live update: two more images, the indexer again while the api serves"
generate 14 2
out=$(compose --profile index run --rm indexer 2>&1) || { echo "$out"; fail "indexer failed while the api runs"; }
echo "$out" | tail -n 2
echo "$out" | grep -q "indexed 2 images" || fail "expected the 2 new images embedded"
info=$(compose --profile index run --rm indexer index info --index /data/index --json 2>/dev/null) \
    || fail "index info failed while the api runs"
echo "$info" | python3 -c 'import json, sys; assert json.load(sys.stdin)["count"] == 16' \
    || fail "index info did not count 16 images"
seen=""
for _ in $(seq 1 50); do
    count=$(curl -sS -f "$URL/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["searchable"])')
    if [ "$count" = 16 ]; then seen=yes; break; fi
    sleep 0.2
done
[ -n "$seen" ] || fail "the api did not pick up the new images within 10 s"
top=$(curl -sS -f -F "image=@$IMAGES_DIR/img_14.jpg" "$URL/search?k=1" \
      | python3 -c 'import json, sys; print(json.load(sys.stdin)["results"][0]["path"])')
[ "$top" = img_14.jpg ] || fail "searching a new image found $top"
echo "live update ok: 16 images searchable, img_14.jpg found, no restart"
