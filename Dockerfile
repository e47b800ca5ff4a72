# syntax=docker/dockerfile:1
# The Journal Sensor image: one static binary on distroless, run as an unprivileged numeric
# user. scripts/image-check.sh proves in CI (which has no Docker engine) that this file's build
# line gives a static binary that serves, takes mail and stops cleanly as uid 65532 with only
# the environment set below; it reads the build line and the ENV line from this file, so keep
# each on one line.

# golang:1.26 is the newest builder image; the toolchain line in go.mod (go1.27.3) is fetched
# by the go command from the module proxy because GOTOOLCHAIN names it. Go 1.26's standard
# library has published vulnerabilities (net/http, crypto/tls, crypto/x509) that 1.27.3 fixes,
# so the image must not be built with the builder's own toolchain.
FROM golang:1.26 AS build
ENV GOTOOLCHAIN=go1.27.3
WORKDIR /src
# Modules (and the toolchain) first, in their own layer, so a source change does not download
# them again.
COPY go.mod go.sum ./
RUN go mod download && go version
COPY . .
ARG VERSION=dev
# Static (no cgo, so distroless/static's missing libc does not matter), no build paths in the
# binary, no symbol table or DWARF. scripts/image-check.sh runs this exact line.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /sensor ./cmd/sensor
# distroless has no shell to make the data directory in, so it is made here and copied with its
# owner: Docker seeds a new named volume from the image's directory, owner and mode included,
# and a root-owned /var/lib/sensor would leave the nonroot user unable to write its spool.
RUN mkdir -p /out/var/lib/sensor && chmod 0700 /out/var/lib/sensor

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
# The repository declares no licence yet; NOASSERTION is SPDX's word for that, and is what the
# label should say until it does, rather than a guess.
LABEL org.opencontainers.image.title="Journal Sensor" \
      org.opencontainers.image.description="SMTP sink for mail journal and BCC copies: keeps envelope, header, attachment-hash and URL metadata, drops bodies, uploads records to a scoring pipeline" \
      org.opencontainers.image.source="https://github.com/journalsensor/sensor" \
      org.opencontainers.image.licenses="NOASSERTION" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /sensor /sensor
COPY --from=build --chown=65532:65532 /out/var/lib/sensor /var/lib/sensor
# Listen on every address (a container's loopback is unreachable from outside it); the data
# directory is the volume. `sensor healthcheck` reads SENSOR_ADMIN_LISTEN, so the HEALTHCHECK
# follows the admin port if an operator moves it.
ENV SENSOR_SMTP_LISTEN=:2525 SENSOR_ADMIN_LISTEN=:9025 SENSOR_DATA_DIR=/var/lib/sensor
VOLUME /var/lib/sensor
EXPOSE 2525 9025
# Numeric, so Kubernetes' runAsNonRoot can verify it without a passwd lookup: the image's
# nonroot user. Ports above 1024 need no capability.
USER 65532:65532
HEALTHCHECK CMD ["/sensor", "healthcheck"]
ENTRYPOINT ["/sensor"]
CMD ["serve"]
