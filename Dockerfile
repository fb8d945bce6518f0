# syntax=docker/dockerfile:1
#
# Flock's container images (docs/deployment.md#container-image).
#
#   docker build -t flock .                         # default: Debian slim with ffmpeg, processes videos
#   docker build -t flock:api-only --target api-only .  # distroless, no ffmpeg: FLOCK_VIDEO_WORKERS=-1
#
# Both run as UID 65532, listen on 0.0.0.0:8080 (HTTP/1.1 and h2c on one port)
# and keep FLOCK_DATA_DIR in the volume /data. Flock drains for up to 25 s on
# SIGTERM and gives running video jobs 20 s more, longer than Docker's default
# 10 s stop timeout: run with `--stop-timeout 60`.
#
# No HEALTHCHECK: neither image has curl or wget, and flock has no probe
# subcommand. Orchestrators probe over HTTP themselves (GET /healthz for
# liveness, GET /readyz for readiness; see deploy/kubernetes/deployment.yaml).

ARG GO_VERSION=1.26

# ---- build: a static, pure-Go binary (SQLite is modernc.org/sqlite, no cgo).
# The golang image sets GOTOOLCHAIN=local, so its Go must be at least the
# version in go.mod: pull the image again if the build says otherwise.
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# The go.mod files of the SDK and the generated code too: the server's go.mod
# replaces those modules with these directories (docs/development.md#modules).
COPY go.mod go.sum go.work ./
COPY gen/go/go.mod gen/go/go.sum ./gen/go/
COPY client/go/go.mod client/go/go.sum ./client/go/
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/flock ./server/cmd/flock \
 && mkdir -p /out/data

# ---- api-only: no ffmpeg, so this instance never processes videos; it takes
# uploads and queues them for instances of the default image. Needs the shared
# setup (Postgres, S3) of docs/deployment.md#many-instances.
FROM gcr.io/distroless/static-debian12:nonroot AS api-only
COPY --from=build /out/flock /usr/local/bin/flock
COPY --from=build --chown=65532:65532 /out/data /data
ENV FLOCK_ADDR=0.0.0.0:8080 \
    FLOCK_DATA_DIR=/data \
    FLOCK_VIDEO_WORKERS=-1
VOLUME ["/data"]
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/flock"]

# ---- runtime (the default target, so it comes last): Debian slim with
# ffmpeg and ffprobe for video processing, and CA certificates for Postgres,
# Redis, SMTP and S3 over TLS.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 flock \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin flock
COPY --from=build /out/flock /usr/local/bin/flock
COPY --from=build --chown=65532:65532 /out/data /data
ENV FLOCK_ADDR=0.0.0.0:8080 \
    FLOCK_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/flock"]
