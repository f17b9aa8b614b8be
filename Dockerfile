# syntax=docker/dockerfile:1
# wagate: a static binary on distroless. Build: docker build -t wagate .
# Two replicas behind a load balancer on one PostgreSQL: deploy/compose.yaml.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO_ENABLED=0: the SQLite driver (modernc.org/sqlite) and everything else is pure Go, so
# the binary needs no libc and runs on an image without one.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/wagate . \
 && mkdir -p /out/data

# static-debian12 has CA certificates (webhooks, SMTP, WhatsApp over TLS), tzdata and a
# non-root user (nonroot, uid 65532), and no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wagate /usr/local/bin/wagate
# The SQLite database and the generated webhook key live here when DATABASE_URL is empty.
COPY --from=build --chown=65532:65532 /out/data /data
ENV WAGATE_ADDR=:8080 \
    WAGATE_DATA_DIR=/data \
    WAGATE_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
USER nonroot:nonroot
# No HEALTHCHECK: the image has no shell or curl to run one. Probe GET /healthz (liveness)
# and GET /readyz (readiness: database and, on PostgreSQL, the notification listener) from
# the orchestrator or the load balancer instead.
ENTRYPOINT ["/usr/local/bin/wagate"]
