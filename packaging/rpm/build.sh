#!/usr/bin/env bash
# Build Collector's RPMs with rpmbuild from packaging/rpm/collector.spec.
#
# usage: packaging/rpm/build.sh [OUTDIR]     (default: dist)
#
# Builds the static binaries as `make build` does (the same flags, so the
# same binaries as the images), generates their manual pages and shell
# completions from the command definitions (a generator build of each
# binary: gendocs.go.in), stages them with packaging/{systemd,selinux} and
# packaging/quadlet (when it holds units) as the spec's Source0, runs
# rpmbuild, and copies the RPMs to OUTDIR.
#
# Environment (all optional):
#   VERSION   the binaries' version (default: git describe, else dev). A
#             tag's vX.Y.Z is the RPM's Version (Release 1; 1.N.gSHA after
#             the tag); without a tag, Version 0 and Release 0.VERSION
#   COMMIT    the binaries' commit (default: git HEAD, else unknown)
#   GO        go command (default: go)
#   GOARCH    target architecture, amd64 or arm64 (default: go env GOARCH)
#   RPMBUILD  rpmbuild command (default: rpmbuild); on a host without an
#             RPM database (Debian) the build dependencies are not checked
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

out=${1:-dist}
go=${GO:-go}
rpmbuild=${RPMBUILD:-rpmbuild}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
goarch=${GOARCH:-$("$go" env GOARCH)}
case $goarch in
amd64) arch=x86_64 ;;
arm64) arch=aarch64 ;;
*) echo "build.sh: no RPM architecture for GOARCH=$goarch" >&2; exit 2 ;;
esac

# rpm_version VERSION: "v1.2.3" -> "1.2.3 1", "v1.2.3-4-gabc" -> "1.2.3 1.4.gabc",
# "807061e-dirty" -> "0 0.807061e.dirty" (a Release holds no "-").
rpm_version() {
	local v=${1#v} rel
	if [[ $v =~ ^([0-9]+\.[0-9]+(\.[0-9]+)*)([-+~].*)?$ ]]; then
		rel=${BASH_REMATCH[3]:1}
		echo "${BASH_REMATCH[1]} 1${rel:+.$rel}"
	else
		echo "0 0.$v"
	fi
}
read -r rpmver rpmrel <<<"$(rpm_version "$version")"
rpmrel=${rpmrel//[^A-Za-z0-9._+]/.}

pkg=github.com/collectorhq/collector
tags=containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper
ldflags="-s -w -X $pkg/internal/buildinfo.Version=$version -X $pkg/internal/buildinfo.Commit=$commit"

stage=$(mktemp -d "${TMPDIR:-/tmp}/collector-rpm.XXXXXX")
trap 'rm -rf "$stage"' EXIT
src=$stage/collector-$rpmver
mkdir -p "$src/bin" "$stage/gen" "$stage/rpmbuild/SOURCES" "$stage/tmp"

echo "build.sh: binaries ($goarch, $version)"
CGO_ENABLED=0 GOARCH=$goarch "$go" build -trimpath -tags "$tags" -ldflags "$ldflags" \
	-o "$src/bin/" ./cmd/collector ./cmd/platform

echo "build.sh: manual pages and completions"
cat >"$stage/gen/overlay.json" <<JSON
{"Replace": {
	"$root/cmd/collector/zz_clidocs.go": "$root/packaging/rpm/gendocs.go.in",
	"$root/cmd/platform/zz_clidocs.go": "$root/packaging/rpm/gendocs.go.in"
}}
JSON
CGO_ENABLED=0 "$go" build -trimpath -overlay "$stage/gen/overlay.json" -tags "$tags" -ldflags "$ldflags" \
	-o "$stage/gen/" ./cmd/collector ./cmd/platform
for bin in collector platform; do
	"$stage/gen/$bin" __clidocs "$src/docs/$bin"
done

cp -r packaging/systemd "$src/systemd"
mkdir "$src/selinux"
cp packaging/selinux/collector.te packaging/selinux/collector.fc packaging/selinux/collector.if "$src/selinux/"
defines=(--define "collector_version $rpmver" --define "collector_release $rpmrel")
# Quadlet's unit files only (not a test or a note that may sit beside them).
shopt -s nullglob
units=(packaging/quadlet/*.{container,volume,network,pod,kube,image})
shopt -u nullglob
if ((${#units[@]})); then
	mkdir "$src/quadlet"
	cp "${units[@]}" "$src/quadlet/"
	defines+=(--define "with_quadlet 1")
fi
# Uncompressed: it lives for this build only.
tar -C "$stage" --owner=0 --group=0 -cf "$stage/rpmbuild/SOURCES/collector-$rpmver.tar" "collector-$rpmver"

nodeps=()
rpm -q rpm >/dev/null 2>&1 || nodeps=(--nodeps)
echo "build.sh: rpmbuild ($arch, $rpmver-$rpmrel)"
"$rpmbuild" -bb --quiet "${nodeps[@]}" --target "$arch" \
	--define "_topdir $stage/rpmbuild" --define "_tmppath $stage/tmp" "${defines[@]}" \
	--define "_binary_payload w6.gzdio" \
	--define "__brp_compress bash %{_rpmconfigdir}/brp-compress %{?_prefix}" \
	packaging/rpm/collector.spec

mkdir -p "$out"
find "$stage/rpmbuild/RPMS" -name '*.rpm' -exec cp {} "$out/" \; -exec basename {} \;
