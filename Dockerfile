# syntax=docker/dockerfile:1.7
#
# One build for all five binaries (smartmon, ingest, enricher, advisor,
# notifier) from the repository root with go.work. Targets:
#
#   docker build -t smart-k8s-monitor .                    # default: all binaries, runs `smartmon run`
#   docker build --target ingest -t smartmon-ingest .      # one service per image (also enricher, advisor, notifier)
#
# Why one image by default: the Helm chart and compose then need one image
# reference, nodes pull the shared layers once, and `smartmon` (am-check,
# trace, dlq) is at hand in every pod for debugging. The per-service targets
# exist for those who want the smallest image per Deployment; they reuse the
# same build stage, so building all of them compiles once.
#
# Static binaries (CGO_ENABLED=0) on distroless/static: no shell, no package
# manager, user 65532 (nonroot). The healthcheck binary (deploy/healthcheck)
# replaces curl/wget for Docker and compose healthchecks.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM docker.io/library/golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
# The module cache and build cache are BuildKit cache mounts: rebuilds only
# download and compile what changed.
COPY . .
ARG TARGETOS TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    mkdir -p /out/data && \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w -X github.com/smart-k8s-monitor/smart-k8s-monitor/pkg/version.Version=${VERSION}" -o /out/ \
      ./cmd/smartmon \
      ./services/ingest/cmd/ingest \
      ./services/enricher/cmd/enricher \
      ./services/advisor/cmd/advisor \
      ./services/notifier/cmd/notifier \
      ./deploy/healthcheck

FROM gcr.io/distroless/static-debian12:nonroot AS base
COPY --from=build /out/healthcheck /usr/local/bin/healthcheck
ENV SMARTMON_LOG_FORMAT=json
USER 65532:65532

FROM base AS ingest
COPY --from=build /out/ingest /usr/local/bin/ingest
ENV SMARTMON_INGEST_LISTEN=0.0.0.0:9095
EXPOSE 9095
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:9095/readyz"]
ENTRYPOINT ["/usr/local/bin/ingest"]

FROM base AS enricher
COPY --from=build /out/enricher /usr/local/bin/enricher
ENV SMARTMON_OPS_LISTEN=0.0.0.0:9096
EXPOSE 9096
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:9096/readyz"]
ENTRYPOINT ["/usr/local/bin/enricher"]

FROM base AS advisor
COPY --from=build /out/advisor /usr/local/bin/advisor
ENV SMARTMON_OPS_LISTEN=0.0.0.0:9097
EXPOSE 9097
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:9097/readyz"]
ENTRYPOINT ["/usr/local/bin/advisor"]

FROM base AS notifier
COPY --from=build /out/notifier /usr/local/bin/notifier
ENV SMARTMON_OPS_LISTEN=0.0.0.0:9098
EXPOSE 9098
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:9098/readyz"]
ENTRYPOINT ["/usr/local/bin/notifier"]

# Default target: every binary; `smartmon run` with its embedded JetStream in /data.
FROM base AS smartmon
COPY --from=build /out/smartmon /out/ingest /out/enricher /out/advisor /out/notifier /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /data
ENV SMARTMON_INGEST_LISTEN=0.0.0.0:9095
VOLUME ["/data"]
EXPOSE 9095
HEALTHCHECK --interval=10s --timeout=4s --start-period=15s --retries=3 CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:9095/readyz"]
ENTRYPOINT ["/usr/local/bin/smartmon"]
CMD ["run", "--data-dir", "/data"]
