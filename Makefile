# Syva: build, demo and test on Debian 12 (run as root for deps/demo/test).
#
#   make demo   install what is missing, build, boot a VM and show a deny and an allow
#   make test   install what is missing, run the whole test suite (unit, integration, VM)
#   make bench  hook cost in the VM (ns per open/kill, with and without Syva)
#   make build  the static release binary: target/x86_64-unknown-linux-gnu/release/syva
#
# Build flags live in .cargo/config.toml; nobody needs to set RUSTFLAGS.

CARGO ?= cargo
TARGET := x86_64-unknown-linux-gnu
BIN := target/$(TARGET)/release/syva

# Debian 12 packages: build (clang, libelf/zlib static libs), VM tests (qemu,
# cloud kernel, busybox, cpio), binary checks (binutils), vmlinux.h
# regeneration (bpftool, lz4), schema fuzzing of the REST API (python3-venv),
# packaging and its tests (rpm: rpmbuild; systemd: systemd-analyze and
# systemd-sysusers; prometheus: promtool).
APT_PACKAGES := ca-certificates curl git build-essential clang libelf-dev zlib1g-dev pkg-config \
	make binutils qemu-system-x86 linux-image-cloud-amd64 busybox-static cpio bpftool lz4 \
	python3 python3-venv python3-pip util-linux coreutils \
	rpm systemd prometheus

.PHONY: all deps rust vm-kernels build demo bench test check lint fmt clean

all: build

deps: ## install system packages and a Rust toolchain if missing
	@if [ "$$(id -u)" != 0 ]; then echo "make deps needs root (apt-get)"; exit 1; fi
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@$(MAKE) --no-print-directory rust tools vm-kernels

# Extra kernels the VM tests boot besides /boot's cloud kernel: Debian 12's
# 6.12 (bookworm-security), unpacked into a cache so /boot stays untouched.
VM_KERNEL_DIR := /var/cache/syva/kernels
vm-kernels:
	@if ! ls $(VM_KERNEL_DIR)/vmlinuz-6.12.* >/dev/null 2>&1; then \
		set -e; \
		pkg=$$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$$' | awk '{print $$1}' | sort -V | tail -n 1); \
		if [ -z "$$pkg" ]; then apt-get update -qq; pkg=$$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$$' | awk '{print $$1}' | sort -V | tail -n 1); fi; \
		echo "fetching $$pkg into $(VM_KERNEL_DIR)"; \
		tmp=$$(mktemp -d); \
		(cd $$tmp && apt-get download -q $$pkg 2>/dev/null) && dpkg-deb -x $$tmp/*.deb $$tmp/x; \
		mkdir -p $(VM_KERNEL_DIR) && cp $$tmp/x/boot/vmlinuz-* $(VM_KERNEL_DIR)/; \
		rm -rf $$tmp; \
	fi

rust: ## a Rust toolchain (rustup, stable) when cargo is not on PATH
	@if ! command -v $(CARGO) >/dev/null 2>&1 && [ ! -x "$$HOME/.cargo/bin/cargo" ]; then \
		echo "installing Rust with rustup"; \
		curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy; \
	fi

build:
	$(CARGO) build --release --locked

demo: deps ## boot the VM and show Syva denying and allowing
	$(CARGO) build --release --locked --examples --bins
	SYVA_VM_SCRIPT=tests/vm/demo.sh $(CARGO) test --release --locked --test vm

bench: deps ## hook cost in the VM: ns per operation with and without Syva
	$(CARGO) build --release --locked --examples --bins
	SYVA_VM_SCRIPT=tests/vm/bench.sh $(CARGO) test --release --locked --test vm

test: deps ## the whole suite: unit, integration over real sockets, VM enforcement
	$(CARGO) fmt --all -- --check
	tests/api_fuzz/install.sh
	$(CARGO) test --release --locked --no-fail-fast

lint: ## what every commit must pass besides the tests
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

# ---- packaging ----------------------------------------------------------------
#   make package  the .deb and .rpm of the release binary, in target/package
#   make image    the container image (docker with BuildKit and access to the
#                 base images; the tests cannot build it)
# tests/packaging.rs and tests/systemd_vm.rs build and install the packages
# in `make test`.
.PHONY: tools package image

# Cargo tools, pinned: cargo-deb builds the .deb from [package.metadata.deb].
CARGO_DEB_VERSION := 3.8.0

tools: ## cargo-deb, when missing or another version
	@if ! $(CARGO) deb --version 2>/dev/null | grep -qx "cargo-deb $(CARGO_DEB_VERSION)"; then \
		echo "installing cargo-deb $(CARGO_DEB_VERSION)"; \
		$(CARGO) install --locked cargo-deb@$(CARGO_DEB_VERSION); \
	fi

package: build
	packaging/build.sh target/package

IMAGE ?= ghcr.io/syva-dev/syva:$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
image:
	docker build --build-arg SYVA_GIT_COMMIT=$$(git rev-parse --short=12 HEAD) -t $(IMAGE) .
