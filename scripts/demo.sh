#!/usr/bin/env bash
# make demo: the whole system end to end on embedded defaults, on this
# machine, as root. Safe to run twice; scripts/demo.sh clean removes what it
# made. Everything it starts listens on 127.0.0.1 only.
#
# It installs what is missing, builds the binaries and the images, starts a
# registry on 127.0.0.1 and signs the images there, starts the platform on
# embedded SQLite, creates a collector, runs the installer command exactly as
# the platform prints it, assigns the example integration, runs a job, waits
# for it and prints what it collected.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="/usr/local/go/bin:$root/bin:$PATH"
demo=$root/.demo
mkdir -p "$demo"
log() { printf '\n==> %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

PLATFORM_ADDR=127.0.0.1:8443
PLATFORM_URL=https://$PLATFORM_ADDR
REGISTRY_ADDR=127.0.0.1:5055
VERSION=${VERSION:-demo}
export COSIGN_PASSWORD=${COSIGN_PASSWORD:-demo-only-password}
# The Podman settings this host needs (no systemd, hybrid cgroups, default
# ulimits above the hard limit), for the service and the CLI alike; /etc is
# left alone.
export CONTAINERS_CONF=$demo/containers.conf
export CONTAINERS_REGISTRIES_CONF=$demo/registries.conf

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() {
	if running "$1"; then kill "$(cat "$1")" 2>/dev/null || true; sleep 1; fi
	rm -f "$1"
}

# Job secrets are files on a tmpfs (never a disk): /run/collector/secrets.
SECRET_DIR=/run/collector/secrets

clean() {
	log "removing what the demo made"
	if command -v podman >/dev/null && [ -S /run/podman/podman.sock ]; then
		podman rm -f -t 0 collector-daemon collector-runner >/dev/null 2>&1 || true
		podman ps -a --filter label=io.collector.role=job -q | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
	fi
	stop_pid "$demo/platform.pid"
	stop_pid "$demo/registry.pid"
	stop_pid "$demo/podman.pid"
	if [ -f "$demo/secrets.mounted" ]; then umount "$SECRET_DIR" 2>/dev/null || true; fi
	rm -rf /etc/collector /var/lib/collector "$SECRET_DIR" "$demo"
	rmdir /run/collector 2>/dev/null || true
	echo "clean."
}
[ "${1:-}" = clean ] && { clean; exit 0; }

log "1. packages"
pkgs=(make git ca-certificates curl jq podman runc conmon uidmap fuse-overlayfs slirp4netns containernetworking-plugins docker-registry busybox-static)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "ok"

log "2. binaries"
make -s build VERSION="$VERSION"
make -s release-tool VERSION="$VERSION"
ls -l bin/

log "3. Podman API service at /run/podman/podman.sock (runc: crun refuses this host's hybrid cgroups)"
cat >"$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
printf 'unqualified-search-registries = []\n[[registry]]\nlocation = "%s"\ninsecure = true\n' "$REGISTRY_ADDR" >"$CONTAINERS_REGISTRIES_CONF"
if ! curl -fsS --unix-socket /run/podman/podman.sock http://d/libpod/_ping >/dev/null 2>&1; then
	mkdir -p /run/podman
	nohup podman --runtime runc system service --time=0 unix:///run/podman/podman.sock >"$demo/podman.log" 2>&1 &
	echo $! >"$demo/podman.pid"
	for _ in $(seq 100); do curl -fsS --unix-socket /run/podman/podman.sock http://d/libpod/_ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
curl -fsS --unix-socket /run/podman/podman.sock http://d/libpod/_ping >/dev/null || die "the Podman service did not start: $demo/podman.log"
echo "podman $(podman version --format '{{.Server.Version}}') answering"

log "3b. job secret dir $SECRET_DIR on a tmpfs"
# The installer refuses a secret dir that is not on a tmpfs. /run is one on
# RHEL; where it is not (this kind of machine), mount one, as the
# installer's refusal says to.
mkdir -p -m 0700 "$SECRET_DIR"
if [ "$(stat -f -c %T "$SECRET_DIR")" != tmpfs ]; then
	mount -t tmpfs -o size=16m,mode=0700 tmpfs "$SECRET_DIR"
	touch "$demo/secrets.mounted"
fi
echo "$(stat -f -c %T "$SECRET_DIR") at $SECRET_DIR"

log "4. registry on $REGISTRY_ADDR"
if ! running "$demo/registry.pid"; then
	cat >"$demo/registry.yml" <<REG
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $demo/registry}
http: {addr: $REGISTRY_ADDR}
REG
	nohup docker-registry serve "$demo/registry.yml" >"$demo/registry.log" 2>&1 &
	echo $! >"$demo/registry.pid"
	for _ in $(seq 50); do curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1 && break; sleep 0.2; done
fi
curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null || die "the registry did not start: $demo/registry.log"
echo ok

log "5. images, built FROM scratch, pushed and signed"
REGISTRY=$REGISTRY_ADDR/collectorhq VERSION=$VERSION PUSH=1 PUSH_TLS_VERIFY=false packaging/images.sh
[ -f "$demo/cosign.key" ] || (cd "$demo" && collector-release keygen --output-key-prefix cosign)
COLLECTOR_IMAGE=$REGISTRY_ADDR/collectorhq/collector:$VERSION
EXAMPLE_IMAGE=$REGISTRY_ADDR/collectorhq/integration-example:$VERSION
for img in "$COLLECTOR_IMAGE" "$EXAMPLE_IMAGE"; do collector-release sign --insecure --key "$demo/cosign.key" "$img"; done
keydata=$(base64 -w0 "$demo/cosign.pub")
cat >"$demo/policy.json" <<POL
{"default": [{"type": "reject"}],
 "transports": {"docker": {"$REGISTRY_ADDR/collectorhq": [
   {"type": "sigstoreSigned", "keyData": "$keydata", "signedIdentity": {"type": "matchRepository"}}]}}}
POL

log "6. platform on $PLATFORM_URL (embedded SQLite in $demo/platform)"
if ! running "$demo/platform.pid"; then
	nohup platform serve --data-dir "$demo/platform" --listen "$PLATFORM_ADDR" --public-url "$PLATFORM_URL" \
		--collector-image "$COLLECTOR_IMAGE" --image-policy "$demo/policy.json" --heartbeat-interval 5s \
		>"$demo/platform.log" 2>&1 &
	echo $! >"$demo/platform.pid"
	for _ in $(seq 100); do [ -f "$demo/platform/ca.crt" ] && curl -fsSk "$PLATFORM_URL/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
fi
curl -fsSk "$PLATFORM_URL/healthz" >/dev/null || die "the platform did not start: $demo/platform.log"
export PLATFORM_URL PLATFORM_DATA_DIR=$demo/platform
# An automation operator, made on the host as an operator does, with an
# API token for the CLI below (kept 0600 in $demo). It is not an admin: the
# platform's setup link stays valid, for the person who opens the console.
if [ ! -s "$demo/api-token" ]; then
	(umask 077 && platform users create --login demo-automation --role operator --token demo --data-dir "$demo/platform" |
		sed -n '/API token (shown once):/{n;p}' >"$demo/api-token")
fi
[ -s "$demo/api-token" ] || die "no API token: platform users create failed"
export PLATFORM_TOKEN
PLATFORM_TOKEN=$(cat "$demo/api-token")
pf() { platform "$@" --server "$PLATFORM_URL" --data-dir "$demo/platform"; }

log "7. collector"
if [ ! -f "$demo/collector-id" ] || ! pf collectors show "$(cat "$demo/collector-id")" >/dev/null 2>&1; then
	pf collectors create --json demo-collector >"$demo/grant.json"
	jq -r .collector.id "$demo/grant.json" >"$demo/collector-id"
fi
CID=$(cat "$demo/collector-id")
if [ ! -f /etc/collector/config.json ]; then
	pf collectors token --json "$CID" >"$demo/grant.json"
fi
install_cmd=$(jq -r .install_commands.podman "$demo/grant.json")
echo "install command, as printed by the platform:"
echo "  $install_cmd"
log "8. running the installer exactly as printed (token on stdin)"
# We are root already, and sudo would drop CONTAINERS_CONF (this host's
# Podman settings): the printed command runs as is, with sudo as a no-op.
sudo() { "$@"; }
export -f sudo
jq -r .enrollment_token "$demo/grant.json" | bash -c "$install_cmd"

log "9. example integration, run now"
if [ ! -f "$demo/integration-id" ]; then
	pf integrations create --json --name example --image "$EXAMPLE_IMAGE" --collector "$CID" --network host \
		--config '{"count": 25, "relationships": true, "token": "demo-secret-do-not-print"}' --secret-field token \
		--interval 1h | jq -r .id >"$demo/integration-id"
fi
IID=$(cat "$demo/integration-id")
JOB=$(pf jobs run --json "$IID" | jq -r .id)
echo "job $JOB"
state=queued
for _ in $(seq 300); do
	state=$(pf jobs show --json "$JOB" | jq -r .state)
	case $state in succeeded | failed | dead | canceled) break ;; esac
	sleep 0.5
done
[ "$state" = succeeded ] || { pf jobs logs "$JOB" || true; die "job $JOB ended $state"; }

log "10. what the job collected"
# awk reads to the end (head would cut the pipe, and pipefail would stop us).
pf entities list --integration "$IID" | awk 'NR <= 12 || /^[0-9]+ entities$/'
pf relationships list --integration "$IID" | awk 'NR <= 4 || /^[0-9]+ relationships$/'
echo "the secret proof (SHA-256 of the config's token; the token itself never leaves the job):"
pf entities list --integration "$IID" --type example_secret_proof
log "11. the collector"
pf collectors show "$CID"
log "12. podman ps"
podman ps
log "done"
echo "console and API: $PLATFORM_URL (its CA: $demo/platform/ca.crt; the CLI's operator token: $demo/api-token)"
if [ -s "$demo/platform/setup-link" ]; then
	echo "open the one-time setup link to create your console administrator (then enrol an authenticator app):"
	echo "  $(cat "$demo/platform/setup-link")"
	echo "the console then shows demo-collector active and the example integration's entities ($PLATFORM_URL/data?integration=$IID)"
else
	echo "the console's administrator exists already: sign in at $PLATFORM_URL/login"
fi
echo "remove everything: make demo-clean"
