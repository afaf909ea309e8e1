# sluice: one static binary on distroless, run as the non-root user (uid 65532).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /sluice ./cmd/sluice && mkdir -p /empty/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /sluice /sluice
# The embedded JetStream store and the merger's scratch files live in /state; a named volume mounted there inherits this owner.
COPY --from=build --chown=65532:65532 /empty/state /state
USER 65532:65532
ENTRYPOINT ["/sluice"]
