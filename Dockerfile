# syntax=docker/dockerfile:1
#
# The Syva image: the static `syva` binary and its role symlinks on a
# distroless "static" base (no shell, no libc, no package manager).
#
#   docker build -t ghcr.io/syva-dev/syva:0.3.0 .
#
# The image runs as the distroless non-root user (65532) by default: right
# for `syva file`, `syva k8s`, `syva api` and `syva ctl`. `syva core` needs
# root and kernel privileges: the pod spec sets them for that container only
# (packaging/k8s/).

# ---- build: the same toolchain and C dependencies as `make build` ---------
# Keep in step with `rust-version` in Cargo.toml (tests/packaging.rs checks).
ARG RUST_VERSION=1.89
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
# clang compiles the BPF programs; libelf and zlib are linked statically into
# libbpf. No protoc: the build uses a pure-Rust protobuf compiler.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      clang libelf-dev zlib1g-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The commit `syva --version` prints (the build context has no .git).
ARG SYVA_GIT_COMMIT=unknown
ENV SYVA_GIT_COMMIT=${SYVA_GIT_COMMIT}
# .cargo/config.toml makes the binary static (crt-static) for this target.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin syva \
 && install -D -m 0755 target/x86_64-unknown-linux-gnu/release/syva /out/usr/bin/syva
# Refuse to ship a binary that needs a loader or shared libraries: the base
# image has neither.
RUN if readelf -lW /out/usr/bin/syva | grep -q INTERP \
       || readelf -dW /out/usr/bin/syva | grep -q NEEDED; then \
      echo "syva is not a static binary" >&2; exit 1; \
    fi
# The multi-call names (the list is syva::cli::ROLE_NAMES).
RUN for name in syva-core syva-file syva-k8s syva-api syvactl syva-ctl; do \
      ln -s syva "/out/usr/bin/$name"; \
    done

# ---- runtime ----------------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="syva" \
      org.opencontainers.image.description="eBPF LSM zone isolation for containers" \
      org.opencontainers.image.source="https://github.com/syva-dev/syva" \
      org.opencontainers.image.licenses="Apache-2.0"
# Symlinks are copied as symlinks.
COPY --from=build /out/ /
USER 65532:65532
ENTRYPOINT ["/usr/bin/syva"]
CMD ["--help"]
