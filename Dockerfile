# flexbridge container image: a static, CGO-free binary on a distroless base, running as a
# non-root user. Build with:  docker build -t flexbridge .
# (Not built in this project's CI: the development machines have no Docker engine.)

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X github.com/flexbridge/flexbridge/internal/cli.Version=${VERSION}" \
      -o /out/flexbridge ./cmd/flexbridge \
 && mkdir -p /out/data /out/configs \
 && cp configs/mapping.yaml configs/container.yaml /out/configs/

FROM gcr.io/distroless/static-debian12:nonroot
WORKDIR /app
COPY --from=build /out/flexbridge /usr/local/bin/flexbridge
COPY --from=build --chown=nonroot:nonroot /out/configs /app/configs
COPY --from=build --chown=nonroot:nonroot /out/data /app/data
USER nonroot:nonroot
EXPOSE 8080
# Inside a container listen on all interfaces; set server.public_url to the address IdPs use.
ENTRYPOINT ["/usr/local/bin/flexbridge"]
CMD ["serve", "--config", "/app/configs/container.yaml"]
