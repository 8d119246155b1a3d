#!/usr/bin/env bash
# Build the worker image with podman on a machine that reaches no image registry:
#
#   sudo deploy/local-image.sh        # -> localhost/graflow-dist-worker:dev
#
# 1. A Debian base image made from Debian packages (debootstrap: python3, its venv
#    module, CA certificates), imported into podman. Its root file system is cached as
#    a tar file, so later builds (and CI runs on the same machine) skip debootstrap.
# 2. workers/Dockerfile built FROM that base (build argument BASE_IMAGE). pip inside
#    the build gets this machine's index settings and CA bundle as build secrets, so
#    neither lands in a layer of the image.
#
# Needs root (debootstrap), podman and debootstrap. Settings, from the environment:
#   IMAGE          the image to build            [graflow-dist-worker:dev]
#   BASE_IMAGE     the base image's name         [localhost/debian-min:bookworm]
#   DEBIAN_SUITE   Debian release of the base    [bookworm]
#   DEBIAN_MIRROR  [the first Debian mirror in /etc/apt, else http://deb.debian.org/debian]
#   BASE_CACHE     [/var/cache/graflow-dist/debian-min-$DEBIAN_SUITE.tar]
#   REBUILD_BASE=1 make the base again even if it exists
#   CONTAINERS_CONF  podman settings [deploy/podman/containers.conf: see that file]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${IMAGE:-graflow-dist-worker:dev}
BASE_IMAGE=${BASE_IMAGE:-localhost/debian-min:bookworm}
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
BASE_CACHE=${BASE_CACHE:-/var/cache/graflow-dist/debian-min-$DEBIAN_SUITE.tar}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/deploy/podman/containers.conf}

say() { printf 'local-image: %s\n' "$*" >&2; }
fail() { say "error: $*"; exit 1; }
elapsed() { printf '%ss' $(( SECONDS - $1 )); }

command -v podman >/dev/null || fail "podman is not installed (apt-get install podman buildah runc fuse-overlayfs slirp4netns uidmap)"

debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local found
    found=$(grep -h -o -E 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list \
              /etc/apt/sources.list.d/* 2>/dev/null | head -n 1 | tr -d ' ' || true)
    echo "${found:-http://deb.debian.org/debian}"
}

make_base() {
    local started=$SECONDS root
    if [ ! -s "$BASE_CACHE" ] || [ "${REBUILD_BASE:-0}" = 1 ]; then
        [ "$(id -u)" = 0 ] || fail "making the base image needs root (debootstrap)"
        command -v debootstrap >/dev/null || fail "debootstrap is not installed (apt-get install debootstrap)"
        root=$(mktemp -d /var/tmp/graflow-base.XXXXXX)
        trap 'rm -rf "$root"' EXIT
        say "debootstrap $DEBIAN_SUITE from $(debian_mirror) (about a minute) ..."
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            "$DEBIAN_SUITE" "$root" "$(debian_mirror)" > "$root.log" 2>&1 \
            || { tail -n 20 "$root.log" >&2; fail "debootstrap failed (log: $root.log)"; }
        rm -f "$root.log"
        # The image's own `apt-get update` fetches fresh lists: keep the base small.
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
               "$root"/var/lib/apt/lists/*
        mkdir -p "$(dirname "$BASE_CACHE")"
        tar -C "$root" -cf "$BASE_CACHE.tmp" . && mv "$BASE_CACHE.tmp" "$BASE_CACHE"
        rm -rf "$root"
        trap - EXIT
        say "base root file system cached in $BASE_CACHE ($(elapsed "$started"))"
    else
        say "using the cached base root file system $BASE_CACHE"
    fi
    podman import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        "$BASE_CACHE" "$BASE_IMAGE" >/dev/null
    say "imported $BASE_IMAGE ($(elapsed "$started"))"
}

# This machine's pip index settings (network indexes only: a file:// index of the host
# is not inside the build) and CA bundle, for the build's pip.
write_pip_settings() {
    local conf=$1 ca=$2
    python3 - "$conf" "$ca" <<'PY'
import os, subprocess, sys
conf, ca = sys.argv[1], sys.argv[2]
settings = {}
try:
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                            capture_output=True, text=True, timeout=60).stdout
except (OSError, subprocess.SubprocessError):
    listed = ""
for line in listed.splitlines():
    key, _, value = line.partition("=")
    settings[key.split(".", 1)[-1]] = value.strip().strip("'\"")
for name in ("index-url", "extra-index-url", "trusted-host", "cert"):
    value = os.environ.get("PIP_" + name.upper().replace("-", "_"))
    if value:
        settings[name] = value
lines = ["[global]"]
for name in ("index-url", "extra-index-url", "trusted-host", "timeout"):
    value = settings.get(name, "")
    if name.endswith("index-url"):
        value = " ".join(u for u in value.split() if u.startswith(("http://", "https://")))
    if value:
        lines.append(f"{name} = {value}")
with open(conf, "w") as f:
    f.write("\n".join(lines) + "\n")
bundle = settings.get("cert") or "/etc/ssl/certs/ca-certificates.crt"
if os.path.isfile(bundle):
    with open(bundle, "rb") as src, open(ca, "wb") as dst:
        dst.write(src.read())
PY
}

build_image() {
    local started=$SECONDS secrets
    secrets=$(mktemp -d)
    trap 'rm -rf "$secrets"' EXIT
    write_pip_settings "$secrets/pip.conf" "$secrets/pip-ca.crt"
    local args=(--secret "id=pip.conf,src=$secrets/pip.conf")
    [ -s "$secrets/pip-ca.crt" ] && args+=(--secret "id=pip-ca.crt,src=$secrets/pip-ca.crt")
    say "building $IMAGE from workers/Dockerfile on $BASE_IMAGE ..."
    # --format docker: the OCI format has no HEALTHCHECK.
    podman build --format docker --file "$repo/workers/Dockerfile" \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" "${args[@]}" --tag "$IMAGE" "$repo" >&2
    rm -rf "$secrets"
    trap - EXIT
    say "built $IMAGE ($(elapsed "$started"))"
}

total=$SECONDS
if [ "${REBUILD_BASE:-0}" = 1 ] || ! podman image exists "$BASE_IMAGE"; then
    make_base
else
    say "using the base image $BASE_IMAGE"
fi
build_image
say "done in $(elapsed "$total"): podman run --rm $IMAGE graflow-dist --version"
