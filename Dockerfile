# amili-customer-sync: the worker (`amili-sync run`) and its tools in one image.
#
#   docker build -t amili-customer-sync .
#   docker run --read-only --tmpfs /tmp --tmpfs /var/lib/amili-sync -p 8080:8080 \
#     -e AMILI_SYNC_KAFKA__BOOTSTRAP_SERVERS=broker:9092 amili-customer-sync            # worker
#   docker run --rm amili-customer-sync request --client 2218                           # a request
#   docker run --rm -p 8700:8700 amili-customer-sync sandbox --host 0.0.0.0 --port 8700 # fake Amili
#
# Build arguments:
#   BASE_IMAGE      a Debian-based image with python3 >= 3.11 on PATH, pinned by digest (default:
#                   python:3.11-slim-bookworm; scripts/test-image passes the debootstrap'd local base
#                   it builds where no registry is reachable, also by digest)
#   UV_IMAGE        an image with the uv binary at /uv; its version should be the one that wrote uv.lock
#   EXTRA_CA_CERT   path (inside the build) of a CA bundle for HTTPS to the package index, for networks
#                   that re-sign TLS; mount it only for the build (podman build -v host.crt:/run/ca.crt:ro)
#
# Runtime contract: runs as uid/gid 10001; the root filesystem may be read-only as long as
# /var/lib/amili-sync (SQLite snapshot cache, AMILI_SYNC_STATE_DIR) and /tmp are writable volumes;
# /healthz, /readyz and /metrics on port 8080; SIGTERM (through tini) ends the open Kafka transaction
# and exits.

# The base is pinned by digest: every build starts from the same bytes, whatever the tag points to
# later; the tag stays for readers. To update it (monthly, or for a Debian or Python security fix):
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{json .Manifest.Digest}}'
#   (or: crane digest python:3.11-slim-bookworm, skopeo inspect docker://python:3.11-slim-bookworm)
# put the new digest here, build, run scripts/test-image, commit. Renovate's `pinDigests` does the
# same by itself. tests/deploy fails if the pin is dropped.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# --- build: the locked dependencies and the project's wheel, in a virtualenv at /opt/venv -----------
FROM ${BASE_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
ARG EXTRA_CA_CERT=""
WORKDIR /src
# dependencies first (exactly uv.lock, hashes checked, no dev or bench group): cached until uv.lock changes
COPY pyproject.toml uv.lock ./
RUN if [ -n "$EXTRA_CA_CERT" ]; then export SSL_CERT_FILE="$EXTRA_CA_CERT"; fi \
    && uv sync --frozen --no-default-groups --no-install-project --no-editable
# then the project itself, built as a wheel and installed (not editable: /src is not in the image)
COPY README.md ./
COPY service ./service
RUN if [ -n "$EXTRA_CA_CERT" ]; then export SSL_CERT_FILE="$EXTRA_CA_CERT"; fi \
    && uv sync --frozen --no-default-groups --no-editable \
    && /opt/venv/bin/amili-sync --help >/dev/null

# --- runtime -------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
# tini: PID 1 that forwards SIGTERM to the worker and reaps zombies. Not version-pinned on purpose:
# the version is whatever the base image's Debian suite ships, and BASE_IMAGE is a build argument.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log \
    && groupadd --gid 10001 amili \
    && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin amili \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/amili-sync \
    && install -d -o root -g root -m 0755 /app

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    AMILI_SYNC_STATE_DIR=/var/lib/amili-sync \
    AMILI_SYNC_HEALTH_PORT=8080 \
    AMILI_SYNC_LOG_FORMAT=json

# an empty, read-only working directory: no stray .env is picked up from it
WORKDIR /app
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "amili-sync"]
CMD ["run"]

# last: a new revision only changes this metadata layer
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="amili-customer-sync" \
      org.opencontainers.image.description="Syncs Amili ARM customers to per-customer Kafka change events, exactly once" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Proprietary"
