#!/usr/bin/env bash
# Build the packages from the release binary already built by cargo
# (target/x86_64-unknown-linux-gnu/release/syva):
#   OUT/syva_<version>-<release>_amd64.deb   cargo-deb, [package.metadata.deb]
#   OUT/syva-<version>-<release>.x86_64.rpm  rpmbuild, packaging/rpm/syva.spec,
#                                            with the files of the .deb
# Usage: packaging/build.sh [OUT]   (default: target/package)
# Needs cargo-deb (make tools), rpmbuild and dpkg-deb (make deps).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/package}
triple=x86_64-unknown-linux-gnu
bin=${CARGO_TARGET_DIR:-target}/$triple/release/syva

die() { echo "packaging/build.sh: $*" >&2; exit 1; }
[ -x "$bin" ] || die "$bin not found: build it first (make build)"
command -v cargo-deb >/dev/null || die "cargo-deb not found: make tools (cargo install --locked cargo-deb)"
command -v rpmbuild >/dev/null || die "rpmbuild not found: make deps (Debian package rpm)"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"

mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/syva_*.deb "$out"/syva-*.rpm

# --no-build: package exactly the binary the tests ran against.
# --no-strip: it is stripped already (profile.release.strip).
deb=$(cargo deb --no-build --no-strip --target "$triple" --output "$out/" | tail -n 1)
[ -f "$deb" ] || die "cargo deb did not report the package it wrote"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
dpkg-deb -x "$deb" "$root"
# RPM distributions keep service defaults in /etc/sysconfig (the units read both).
mv "$root/etc/default" "$root/etc/sysconfig"

# %files: every file and symlink; /etc files are configuration that upgrades
# must not overwrite; the package owns its own directories, not /usr or /etc.
{
	(cd "$root" && find . \( -type f -o -type l \) | sed 's|^\.||' | sort) | while read -r f; do
		case $f in
		/etc/*) echo "%config(noreplace) $f" ;;
		/usr/share/doc/syva/*) echo "%doc $f" ;;
		*) echo "$f" ;;
		esac
	done
	(cd "$root" && find ./etc/syva ./usr/share/syva ./usr/share/doc/syva -type d | sed 's|^\.||' | sort) |
		sed 's|^|%dir |'
} >"$work/files"

version=$(dpkg-deb -f "$deb" Version)
rpmbuild -bb packaging/rpm/syva.spec \
	--quiet \
	--define "_topdir $work/rpmbuild" \
	--define "syva_version ${version%-*}" \
	--define "syva_release ${version##*-}" \
	--define "syva_root $root" \
	--define "syva_filelist $work/files"
cp "$work"/rpmbuild/RPMS/x86_64/syva-*.rpm "$out/"
ls -1 "$out"/syva_*.deb "$out"/syva-*.rpm
