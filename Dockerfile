# syntax=docker/dockerfile:1
#
# The kmsync image: one binary, /usr/local/bin/kmsync, on a distroless base, running as UID 65532.
#   docker build -t kmsync:dev .
# The built-in rule modules are WebAssembly compiled by host/build.rs and embedded in the binary,
# so the builder needs the wasm32-unknown-unknown target; the runtime image needs nothing else.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
RUN rustup target add wasm32-unknown-unknown
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit); the binary is copied out of
# the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p kmsync --bin kmsync \
 && install -D -m 0755 target/release/kmsync /out/kmsync

# glibc and libgcc from Debian 12, as in the builder; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="kmsync" \
      org.opencontainers.image.description="Kubernetes Secrets in step with Alibaba Cloud KMS Secrets Manager" \
      org.opencontainers.image.source="https://github.com/kmsync/kmsync" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/kmsync /usr/local/bin/kmsync
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kmsync"]
CMD ["controller"]
