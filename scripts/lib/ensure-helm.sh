# shellcheck shell=bash
# ensure_helm: print the path of a helm v3.22.0 binary, building it once into a cache outside git
# (GOBIN=$AMILI_SYNC_CACHE/bin go install ..., about 2 minutes on 2 cores, from the Go module proxy).
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
AMILI_SYNC_CACHE="${AMILI_SYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/amili-sync}"

ensure_helm() {
  local bin="$AMILI_SYNC_CACHE/bin/helm" stamp="$AMILI_SYNC_CACHE/bin/helm.version"
  if [[ -x "$bin" && "$(cat "$stamp" 2>/dev/null)" == "$HELM_VERSION" ]]; then
    echo "$bin"
    return 0
  fi
  if ! command -v go >/dev/null; then
    echo "ensure_helm: Go is needed to build helm $HELM_VERSION (apt-get install golang, or put go on PATH)" >&2
    return 1
  fi
  mkdir -p "$AMILI_SYNC_CACHE/bin"
  echo "ensure_helm: building helm $HELM_VERSION into $AMILI_SYNC_CACHE/bin (once, about 2 minutes)" >&2
  GOBIN="$AMILI_SYNC_CACHE/bin" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  echo "$HELM_VERSION" >"$stamp"
  echo "$bin"
}
