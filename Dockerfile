# faxflow worker image.
#
#   docker build -t faxflow .
#   docker run --rm faxflow --version
#   docker run --rm faxflow demo
#   docker compose up            (compose.yaml: PostgreSQL + 3 workers on one topic)
#
# Base: Debian's own release image, with Debian's python3 (3.11 in bookworm), tesseract and
# poppler, so every package in the image comes from one distribution and gets Debian's security
# updates. python:3.11-slim is Debian plus a Python built from source in /usr/local: a second
# Python next to the one Debian's packages would pull in, patched on Docker's schedule.
# The tag is pinned; pin the digest too (debian:bookworm-slim@sha256:...) where a registry is
# reachable at release time (`docker buildx imagetools inspect debian:bookworm-slim`).
# See docs/operations.md.

# --- builder: a venv with faxflow and its dependencies, built from this source tree ----------
FROM debian:bookworm-slim AS builder

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Versions come from the pinned Debian release; exact pins would break on every security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# .dockerignore lets in only pyproject.toml, README/LICENSE, faxflow/, plugins/ and the two
# files from docker/ that the runtime stage copies.
WORKDIR /src
COPY . .

# Builds behind a TLS-inspecting proxy: -v /etc/ssl/certs:/mnt:ro and
# --build-arg PIP_CA_BUNDLE=/mnt/ca-certificates.crt (the mount leaves nothing in the image).
ARG PIP_CA_BUNDLE=""
# Extras: "postgresql" (psycopg, libpq inside) for the shared journal, "demo" (a local SMTP
# server) so `docker run faxflow demo` works, "console" (Starlette, uvicorn, argon2) for the
# web console (`faxflow console`, compose's console service). pip stays in the venv so derived
# images can add plugins: FROM faxflow + RUN pip install faxflow-yourplugin.
# hadolint ignore=DL3013
RUN if [ -n "$PIP_CA_BUNDLE" ]; then export PIP_CERT="$PIP_CA_BUNDLE"; fi \
    && python3 -m venv /opt/faxflow \
    && /opt/faxflow/bin/pip install ".[postgresql,demo,console]" \
    && /opt/faxflow/bin/faxflow --version

# --- runtime: Debian + OCR tools + the venv, no compilers, no pip cache, no source tree -------
FROM debian:bookworm-slim

# tini: PID 1 that forwards SIGTERM to faxflow and reaps orphaned tesseract/pdftoppm children;
# baked in so docker, podman and Kubernetes behave alike (none of them needs --init).
# fonts-dejavu-core: the sample-fax generator (`faxflow demo`, `faxflow simulator`) draws text.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 \
        tesseract-ocr tesseract-ocr-eng tesseract-ocr-deu \
        poppler-utils \
        fonts-dejavu-core \
        tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 faxflow \
    && useradd --uid 10001 --gid faxflow --home-dir /var/lib/faxflow \
        --no-create-home --shell /usr/sbin/nologin faxflow \
    && mkdir -p /etc/faxflow /var/lib/faxflow/journal /var/lib/faxflow/spool \
        /var/lib/faxflow/quarantine /var/lib/faxflow/out \
    && chown -R faxflow:faxflow /var/lib/faxflow

COPY --from=builder /opt/faxflow /opt/faxflow
COPY docker/entrypoint.sh /usr/local/bin/faxflow-entrypoint
COPY docker/faxflow.toml /etc/faxflow/faxflow.toml

# Build arguments change the cache key of every RUN after them, so they come after the RUNs.
# VERSION follows pyproject.toml (a test checks); REVISION: --build-arg REVISION=$(git rev-parse HEAD)
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="faxflow" \
      org.opencontainers.image.description="Inbound-fax worker for Retarus Fax2WSPull: pull, OCR, route, deliver, acknowledge." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# OMP_THREAD_LIMIT=1: tesseract must not start a thread per core for every page; faxflow already
# OCRs [plugins.ocr] workers pages at once, and threads on top of that only thrash.
ENV PATH=/opt/faxflow/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_THREAD_LIMIT=1 \
    HOME=/var/lib/faxflow \
    FAXFLOW_HEALTH_URL=http://127.0.0.1:8000/healthz

USER 10001:10001
WORKDIR /var/lib/faxflow
VOLUME ["/var/lib/faxflow/journal", "/var/lib/faxflow/spool", \
        "/var/lib/faxflow/quarantine", "/var/lib/faxflow/out"]
# 8000: the worker's health and metrics; 8090: the web console (`faxflow console`).
EXPOSE 8000 8090

# No curl in the image: the venv's Python asks /healthz; any error or non-2xx exits 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['FAXFLOW_HEALTH_URL'], timeout=4)"]

# Exec form all the way down: tini -> sh (exec) -> faxflow, so SIGTERM reaches faxflow's
# graceful shutdown. The entrypoint only turns *_FILE secrets into variables, then execs.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/faxflow-entrypoint"]
CMD ["run", "-c", "/etc/faxflow/faxflow.toml"]
