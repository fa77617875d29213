# shellcheck shell=bash
# Helpers for building and running the container image on this machine with podman/buildah/runc
# (no Docker engine, no container registry). Sourced by scripts/test-image.
#
#   image_tools      install podman, buildah, runc, uidmap, debootstrap, catatonit (idempotent, apt)
#   image_conf       write and export CONTAINERS_CONF (runc, ulimits that runc accepts here)
#   image_base REF   make sure REF (e.g. localhost/base:bookworm-py311) exists: a debootstrap'd
#                    bookworm minbase + python3 3.11, cached as a tarball under .cache/image/
#   image_uv REF     make sure REF (e.g. localhost/uv:0.13.9) exists: the host's uv binary at /uv,
#                    standing in for ghcr.io/astral-sh/uv which is not reachable here

IMAGE_CACHE="${IMAGE_CACHE:-${ROOT:?ROOT must be set}/.cache/image}"
# bookworm's python3 is 3.11, the version the service is built for; what python:3.11-slim has too
BASE_PACKAGES="python3,ca-certificates,netbase,tzdata"

_img_log() { printf '%s test-image: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

image_tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v buildah >/dev/null || missing+=(buildah)
  command -v runc >/dev/null || missing+=(runc)
  command -v newuidmap >/dev/null || missing+=(uidmap)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  # podman kube play builds its pause image from catatonit
  [[ -x /usr/libexec/podman/catatonit ]] || command -v catatonit >/dev/null || missing+=(catatonit)
  if ((${#missing[@]})); then
    _img_log "installing ${missing[*]} (apt)"
    if [[ ! -d /var/lib/apt/lists/partial ]] || ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
      apt-get update -qq
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  fi
}

image_conf() {
  mkdir -p "$IMAGE_CACHE"
  # crun fails here (cgroups in hybrid mode); runc refuses the default ulimits of this machine
  cat >"$IMAGE_CACHE/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
  export CONTAINERS_CONF="$IMAGE_CACHE/containers.conf"
}

_apt_mirror() {
  # the Debian mirror apt uses on this host (deb822 or one-line sources)
  local url
  url=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)
  [[ -n "$url" ]] || url=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk '{print $2}' | grep -i debian | grep -v security | head -1)
  echo "${url:-http://deb.debian.org/debian}"
}

image_base() {
  local ref="$1" key tarball rootfs
  key=$(printf 'bookworm minbase %s' "$BASE_PACKAGES" | sha256sum | cut -c1-12)
  tarball="$IMAGE_CACHE/base-bookworm-$key.tar"
  if podman image exists "$ref" && [[ "$(podman image inspect --format '{{index .Labels "base.key"}}' "$ref" 2>/dev/null)" == "$key" ]]; then
    return 0
  fi
  if [[ ! -s "$tarball" ]]; then
    rootfs="$IMAGE_CACHE/rootfs.tmp"
    rm -rf "$rootfs"
    _img_log "debootstrap bookworm minbase + $BASE_PACKAGES (about 75-120 s, once; cached in $tarball)"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" "$(_apt_mirror)" \
      >"$IMAGE_CACHE/debootstrap.log" 2>&1 || { tail -20 "$IMAGE_CACHE/debootstrap.log" >&2; return 1; }
    # slim it the way python:*-slim is slim: no apt lists, docs, man pages or caches
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
      "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/log/*.log "$rootfs"/debootstrap
    tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  _img_log "importing $tarball as $ref"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL base.key=$key" \
    --change 'CMD ["python3"]' \
    "$tarball" "$ref" >/dev/null
}

_uv_binary() {
  # the real uv executable (pyenv puts a shell shim first on PATH)
  local c
  for c in "$(pyenv which uv 2>/dev/null)" "$(readlink -f "$(command -v uv)")"; do
    if [[ -x "$c" && "$(head -c4 "$c" | od -An -c | tr -d ' ')" == '177ELF' ]]; then
      echo "$c"; return 0
    fi
  done
  return 1
}

image_uv() {
  local ref="$1" bin dir
  if podman image exists "$ref"; then return 0; fi
  bin=$(_uv_binary) || { _img_log "no uv executable found on the host"; return 1; }
  dir=$(mktemp -d)
  cp "$bin" "$dir/uv"
  tar --numeric-owner -C "$dir" -cf "$dir.tar" uv
  podman import --quiet --change 'ENTRYPOINT ["/uv"]' "$dir.tar" "$ref" >/dev/null
  rm -rf "$dir" "$dir.tar"
}
