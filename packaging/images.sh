#!/usr/bin/env bash
# Build Collector's container images FROM scratch with Podman, reproducibly:
# the same source, VERSION and COMMIT give the same image IDs and digests.
#
# usage: packaging/images.sh [IMAGE...]    (default: collector integration-example integration-ldap)
#
# Environment (all optional):
#   PODMAN            podman command line, word-split, e.g.
#                     "podman --root /x/root --runroot /x/runroot --runtime runc"  (default: podman)
#   REGISTRY          name prefix of the tags                (default: localhost/collectorhq)
#   VERSION           version label and buildinfo.Version    (default: git describe, else dev)
#   COMMIT            source revision label and buildinfo.Commit (default: git HEAD, else unknown)
#   SOURCE_URL        org.opencontainers.image.source        (default: https://github.com/collectorhq/collector)
#   SOURCE_DATE_EPOCH timestamp of the images and their files (default: 0)
#   GO                go command                             (default: go)
#   CA_BUNDLE         CA certificates copied into the collector image
#                     (default: /etc/ssl/certs/ca-certificates.crt)
#   IIDFILE           when set, "IMAGE TAG ID" lines are written there
#   PUSH              when 1, push each image to its tag after the build
#   PUSH_TLS_VERIFY   false for a plain-HTTP registry on 127.0.0.1 (default: true)
#   RELEASE           the collector-release binary that builds the integration
#                     images (default: built from ./cmd/collector-release)
#
# The integration images (integration-*) are built by `collector-release
# build`, the recipe integration authors use (docs/writing-integrations.md),
# with packaging/containers/<image>/Containerfile and the manifest
# integrations/<name>/integration.yaml, which goes into the image's labels.
#
# Images are tagged $REGISTRY/<image>:$VERSION. Signing is a separate step:
# collector-release sign (docs/images.md).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

read -r -a podman <<<"${PODMAN:-podman}"
registry=${REGISTRY:-localhost/collectorhq}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-${REVISION:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}}
source_url=${SOURCE_URL:-https://github.com/collectorhq/collector}
epoch=${SOURCE_DATE_EPOCH:-0}
go=${GO:-go}
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
images=("$@")
[ ${#images[@]} -gt 0 ] || images=(collector integration-example integration-ldap)
release=${RELEASE:-}

pkg=github.com/collectorhq/collector
ldflags="-s -w -buildid= -X $pkg/internal/buildinfo.Version=$version -X $pkg/internal/buildinfo.Commit=$commit"

stage_root=$(mktemp -d "${TMPDIR:-/tmp}/collector-images.XXXXXX")
trap 'rm -rf "$stage_root"' EXIT

# gobuild BIN PKG: a static, reproducible build of PKG into the stage as BIN.
gobuild() {
	CGO_ENABLED=0 "$go" build -trimpath -buildvcs=false -tags containers_image_openpgp \
		-ldflags "$ldflags" -o "$stage/$1" "$2"
	chmod 0755 "$stage/$1"
}

# users NAME UID: minimal /etc/passwd and /etc/group with root and NAME.
users() {
	printf 'root:x:0:0:root:/root:/sbin/nologin\n%s:x:%s:%s:%s:/nonexistent:/sbin/nologin\n' "$1" "$2" "$2" "$1" >"$stage/passwd"
	printf 'root:x:0:\n%s:x:%s:\n' "$1" "$2" >"$stage/group"
	chmod 0644 "$stage/passwd" "$stage/group"
}

stage_collector() {
	gobuild collector ./cmd/collector
	users nonroot 65532
	[ -r "$ca_bundle" ] || { echo "images.sh: no CA bundle at $ca_bundle (apt-get install ca-certificates, or set CA_BUNDLE)" >&2; exit 1; }
	install -m 0644 "$ca_bundle" "$stage/ca-certificates.crt"
	mkdir -p "$stage/tmp"
	chmod 1777 "$stage/tmp"
}

# build_integration IMAGE TAG: collector-release build, the authors' recipe.
build_integration() {
	if [ -z "$release" ]; then
		release=$stage_root/collector-release
		CGO_ENABLED=0 "$go" build -trimpath -tags containers_image_openpgp -o "$release" ./cmd/collector-release
	fi
	local push=()
	[ "${PUSH:-0}" != 1 ] || push=(--push)
	[ "${PUSH_TLS_VERIFY:-true}" != false ] || push+=(--insecure)
	"$release" build "./cmd/$1" --image "$2" --manifest "integrations/${1#integration-}/integration.yaml" \
		--containerfile "packaging/containers/$1/Containerfile" --version "$version" --commit "$commit" \
		--source-url "$source_url" --epoch "$epoch" --tags containers_image_openpgp --podman "${podman[*]}" \
		--iidfile "$stage_root/$1.iid" "${push[@]}" >/dev/null
}

for image in "${images[@]}"; do
	containerfile=packaging/containers/$image/Containerfile
	[ -f "$containerfile" ] || { echo "images.sh: unknown image $image (no $containerfile)" >&2; exit 2; }
	tag=$registry/$image:$version
	echo "images.sh: building $tag" >&2
	if [[ $image == integration-* ]]; then
		build_integration "$image" "$tag"
	else
		stage=$stage_root/$image
		mkdir -p "$stage"
		"stage_$image"
		# Fixed file times in the context too, so nothing depends on the clock.
		find "$stage" -exec touch -h -d "@$epoch" {} +
		"${podman[@]}" build --quiet --no-cache --timestamp "$epoch" \
			--build-arg "VERSION=$version" --build-arg "REVISION=$commit" --build-arg "SOURCE=$source_url" \
			-f "$containerfile" -t "$tag" --iidfile "$stage_root/$image.iid" "$stage" >/dev/null
		if [ "${PUSH:-0}" = 1 ]; then
			"${podman[@]}" push --quiet --tls-verify="${PUSH_TLS_VERIFY:-true}" "$tag" "docker://$tag"
		fi
	fi
	id=$(<"$stage_root/$image.iid")
	echo "$image $tag $id"
	[ -z "${IIDFILE:-}" ] || echo "$image $tag $id" >>"$IIDFILE"
done
