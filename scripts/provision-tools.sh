#!/usr/bin/env bash
# Installs every server corral's tests and `make start` need into a per-user cache keyed by
# version, using only package registries (Go module proxy, Maven Central, npm, Debian); Chromium
# for the Web UI test comes from Debian's apt repository (system-wide, not in the cache).
# Idempotent: on a warm cache it checks a few files and prints where each tool is.
# Prints `name=path` lines on stdout (machine-readable); progress goes to stderr.
#
# usage: provision-tools.sh [temporal] [test-server] [kube] [chromium] [helm] [prometheus] [node]
#   (no argument: all but node)
#   kube: kube-apiserver, kube-scheduler, etcd and KWOK (the test cluster, test/harness/kube.ts)
#   node: a real node for test/harness/real-node.ts (make test-cluster; root only): kubelet built at the kube
#         group's version, Debian's containerd, runc, containernetworking-plugins and busybox-static, and the
#         static binaries of the local test images (pause, memhog) under node-rootfs-<version>
#   helm: helm (go install), for the chart test; prometheus: Debian's prometheus and promtool
set -euo pipefail

selected=" ${*:-temporal test-server kube chromium helm prometheus} "
wanted() { [[ "$selected" == *" $1 "* ]]; }
for arg in "$@"; do
  case "$arg" in
    temporal | test-server | kube | chromium | helm | prometheus | node) ;;
    *) echo "unknown tool: $arg (temporal, test-server, kube, chromium, helm, prometheus, node)" >&2; exit 2 ;;
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

CACHE="${CORRAL_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/corral/tools}"
mkdir -p "$CACHE"
say() { echo "[provision] $*" >&2; }
elapsed() { echo "$(($(date +%s) - $1))s"; }

want() { command -v "$1" >/dev/null 2>&1 || { say "missing required command: $1"; exit 1; }; }
if wanted temporal || wanted kube || wanted helm || wanted node; then want go; fi
if wanted test-server; then want java; want mvn; fi

# --- Temporal CLI (dev server + embedded Web UI) ---------------------------------------------
temporal_dir="$CACHE/temporal-cli-$TEMPORAL_CLI_VERSION"
if wanted temporal && [ ! -x "$temporal_dir/bin/temporal" ]; then
  t0=$(date +%s)
  say "building Temporal CLI $TEMPORAL_CLI_VERSION with go install (first time only, a few minutes)"
  mkdir -p "$temporal_dir/bin.tmp"
  GOBIN="$temporal_dir/bin.tmp" GOFLAGS=-buildvcs=false go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION"
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
  mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$work/lib" >&2
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
# node: the kubelet, from the same module at the same version as the apiserver it registers with.
if wanted node; then kube_bins+=(kubelet); fi
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
    (cd "$src" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null)
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
    GOFLAGS=-mod=mod go mod tidy -e >&2 || true
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
      GOFLAGS=-mod=mod go build -trimpath -ldflags="$flags" -o "$kube_dir/bin/$bin.tmp.$$" "$pkg"
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
  GOBIN="$kwok_dir/bin.tmp" GOFLAGS=-buildvcs=false go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  rm -rf "$kwok_dir/bin" && mv "$kwok_dir/bin.tmp" "$kwok_dir/bin"
  say "KWOK ready in $(elapsed "$t0")"
fi

# --- helm, with go install (the chart test: helm lint, helm template) ---------------------------
helm_dir="$CACHE/helm-$HELM_VERSION"
if wanted helm && [ ! -x "$helm_dir/bin/helm" ]; then
  t0=$(date +%s)
  say "building helm $HELM_VERSION with go install (first time only, a few minutes)"
  rm -rf "$helm_dir/bin.tmp" && mkdir -p "$helm_dir/bin.tmp"
  GOBIN="$helm_dir/bin.tmp" GOFLAGS=-buildvcs=false go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  rm -rf "$helm_dir/bin" && mv "$helm_dir/bin.tmp" "$helm_dir/bin"
  say "helm ready in $(elapsed "$t0")"
fi

# --- Debian packages: Chromium (the Web UI test, driven by playwright-core, which never downloads)
# and Prometheus with promtool (the dashboard and alerting-rules test). System-wide, not in the cache.
apt_install() {
  local package="$1" t0
  t0=$(date +%s)
  say "installing Debian's $package with apt-get (first time only)"
  local sudo_=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { say "$package is missing and installing it needs root (apt-get install $package)"; exit 1; }
    sudo_=(sudo)
  fi
  # Bounded: per-request timeouts and retries, and a ceiling on the whole step. No service is
  # started: the package's own daemon is not wanted (policy-rc.d refuses it).
  local apt_opts=(-q -o Acquire::http::Timeout=30 -o Acquire::Retries=3)
  "${sudo_[@]}" timeout 600 apt-get "${apt_opts[@]}" update >&2
  "${sudo_[@]}" timeout 900 env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get "${apt_opts[@]}" install -y --no-install-recommends "$package" >&2
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
  echo "containerd=$(command -v containerd)"
  echo "ctr=$(command -v ctr)"
  echo "runc=$(command -v runc)"
  echo "cni_bin_dir=$cni_bin_dir"
  echo "busybox_static=/bin/busybox"
  echo "node_rootfs=$node_rootfs"
fi
