#!/usr/bin/env bash
# Prepare this (Debian bookworm, root, no Docker engine, no container registry)
# machine to build and run the cbir image with podman.
#
# Idempotent: safe to run again; each step checks before it acts.
#   1. apt-get install podman, podman-compose, runc, debootstrap (+ helpers); when Debian's
#      podman-compose has no --profile (bookworm's 1.0.3), a newer one from PyPI in a venv
#   2. /etc/containers/containers.conf: default_ulimits = [] and runtime = "runc"
#   3. localhost/cbir-base:bookworm from debootstrap --variant=minbase + podman import
#
# Usage:  sudo bash docker/setup-podman.sh          (FORCE_BASE=1 to rebuild the base)
# Env:    DEBIAN_MIRROR (default: the URI of this host's apt sources, else deb.debian.org)
#         BASE_IMAGE    (default localhost/cbir-base:bookworm)
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-localhost/cbir-base:bookworm}"
SUITE=bookworm
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOTFS="${ROOTFS:-$HERE/rootfs}"          # git-ignored (docker/rootfs/)

log() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root" >&2
    exit 1
fi

# --- 1. packages ---------------------------------------------------------------
PKGS=(podman podman-compose runc debootstrap fuse-overlayfs slirp4netns netavark aardvark-dns iptables uidmap
      python3-venv curl)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    log "packages already installed"
fi

# compose profiles (docker/compose.yml's indexer) need a podman-compose that knows --profile.
if ! podman-compose --help 2>&1 | grep -q -- --profile; then
    log "podman-compose from PyPI into /opt/podman-compose (Debian's has no --profile)"
    python3 -m venv /opt/podman-compose
    /opt/podman-compose/bin/pip install -q "podman-compose>=1.1"
    ln -sf /opt/podman-compose/bin/podman-compose /usr/local/bin/podman-compose
fi
podman-compose version 2>/dev/null | grep -i 'podman-compose' || true

# --- 2. containers.conf ----------------------------------------------------------
# This sandbox refuses the default RLIMIT_NOFILE/NPROC that podman sets, and crun
# does not work here: use runc and no default ulimits.
CONF=/etc/containers/containers.conf
mkdir -p /etc/containers
touch "$CONF"
python3 - "$CONF" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()

def ensure(text, table, key, value):
    """Set key = value inside [table], adding the table if needed."""
    lines = text.splitlines()
    out, in_table, done, seen_table = [], False, False, False
    for line in lines:
        m = re.match(r"\s*\[([^\]]+)\]\s*$", line)
        if m:
            if in_table and not done:
                out.append(f"{key} = {value}")
                done = True
            in_table = m.group(1).strip() == table
            seen_table = seen_table or in_table
            out.append(line)
            continue
        if in_table and re.match(rf"\s*{re.escape(key)}\s*=", line):
            if not done:
                out.append(f"{key} = {value}")
                done = True
            continue
        out.append(line)
    if in_table and not done:
        out.append(f"{key} = {value}")
        done = True
    if not seen_table:
        out += ["", f"[{table}]", f"{key} = {value}"]
    return "\n".join(out).lstrip("\n") + "\n"

text = ensure(text, "containers", "default_ulimits", "[]")
text = ensure(text, "engine", "runtime", '"runc"')
open(path, "w").write(text)
PY
log "$CONF:"
cat "$CONF"

# --- 3. base image ---------------------------------------------------------------
if podman image exists "$BASE_IMAGE" && [ "${FORCE_BASE:-0}" != 1 ]; then
    log "$BASE_IMAGE already present"
else
    if [ -z "${DEBIAN_MIRROR:-}" ]; then
        DEBIAN_MIRROR="$(grep -h -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
            | grep -v -- '-security' | grep -o -E 'https?://[^ ]+/debian/?' | head -1 || true)"
        DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    fi
    log "debootstrap $SUITE (minbase) from $DEBIAN_MIRROR into $ROOTFS"
    rm -rf "$ROOTFS"
    debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$DEBIAN_MIRROR"

    # apt sources inside the image: same mirror as the host, plus updates/security.
    SEC_MIRROR="${DEBIAN_MIRROR%/debian*}/debian-security"
    rm -f "$ROOTFS/etc/apt/sources.list"
    cat > "$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SEC_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # Slim, like the official debian:*-slim images.
    cat > "$ROOTFS/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        > "$ROOTFS/etc/apt/apt.conf.d/docker-no-recommends"
    printf 'Acquire::Languages "none";\n' > "$ROOTFS/etc/apt/apt.conf.d/docker-no-languages"
    rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
           "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/log/*.log \
           "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/* 2>/dev/null || true
    : > "$ROOTFS/etc/hostname"
    : > "$ROOTFS/etc/resolv.conf"

    log "podman import -> $BASE_IMAGE-raw"
    podman rmi -f "$BASE_IMAGE" "$BASE_IMAGE-raw" >/dev/null 2>&1 || true
    tar -C "$ROOTFS" --numeric-owner -c . | podman import \
        --change 'CMD ["/bin/bash"]' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$BASE_IMAGE-raw"
    rm -rf "$ROOTFS"

    # Second step: point-release/security updates + ca-certificates (as in the
    # python:3.11-slim base). Pre-installing ca-certificates matters here: builds
    # bind-mount the host CA bundle read-only over /etc/ssl/certs/ca-certificates.crt,
    # and ca-certificates' postinst (pulled in by python3-venv) fails when it
    # cannot rewrite that file. No CA mount needed for this step (apt uses http).
    log "apt upgrade + ca-certificates -> $BASE_IMAGE"
    printf '%s\n' \
        "FROM $BASE_IMAGE-raw" \
        'RUN apt-get update -q \' \
        ' && DEBIAN_FRONTEND=noninteractive apt-get -y -q upgrade \' \
        ' && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ca-certificates \' \
        ' && apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log' \
        'CMD ["/bin/bash"]' \
        | podman build --runtime runc --squash-all -t "$BASE_IMAGE" -f - "$HERE"
    podman rmi "$BASE_IMAGE-raw" >/dev/null
fi

log "smoke test: podman run --runtime runc $BASE_IMAGE"
podman run --rm --runtime runc "$BASE_IMAGE" bash -c '. /etc/os-release; echo "$PRETTY_NAME"'
podman image ls "$BASE_IMAGE"
log "done"
