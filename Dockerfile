# Multi-stage build: a static backfill binary on a minimal image. One image serves every
# role (api, worker, scheduler); the compose file picks the role with the command.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The context carries no .git (.dockerignore), so go build records no commit: VCS_REF gives
# `backfill version` one (docker build --build-arg VCS_REF=$(git rev-parse HEAD) .).
ARG VCS_REF=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.commit=${VCS_REF}" -o /out/backfill ./cmd/backfill

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/backfill /usr/local/bin/backfill
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/backfill"]
CMD ["help"]
