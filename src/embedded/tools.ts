// Locates the servers installed by scripts/provision-tools.sh. `make start` and the test runner
// provision up front and pass the paths in the environment; anything started on its own
// provisions just the tool it needs (a no-op on a warm cache).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The checkout (or installed package): the nearest directory above this module with a
 * package.json — two levels up from src/embedded, three from the compiled dist/src/embedded.
 */
export const repoRoot = packageRoot(__dirname);

function packageRoot(from: string): string {
  for (let dir = from; path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
  }
  // A layout without one (e.g. an image that copied only dist/): where the checkout would be.
  return path.resolve(from, '..', '..');
}

/** A tool, the provisioning script's name for its group, its output key and its env variable. */
const tools = {
  temporal: { group: 'temporal', key: 'temporal', env: 'CORRAL_TOOL_TEMPORAL' },
  temporalTestServer: { group: 'test-server', key: 'temporal_test_server', env: 'CORRAL_TOOL_TEMPORAL_TEST_SERVER' },
  kubeApiserver: { group: 'kube', key: 'kube_apiserver', env: 'CORRAL_TOOL_KUBE_APISERVER' },
  kubeScheduler: { group: 'kube', key: 'kube_scheduler', env: 'CORRAL_TOOL_KUBE_SCHEDULER' },
  etcd: { group: 'kube', key: 'etcd', env: 'CORRAL_TOOL_ETCD' },
  /** KWOK (sigs.k8s.io/kwok): fake nodes and the kubelet's pod lifecycle, for the test apiserver. */
  kwok: { group: 'kube', key: 'kwok', env: 'CORRAL_TOOL_KWOK' },
  /** Debian's chromium, for the Web UI test (driven by playwright-core). */
  chromium: { group: 'chromium', key: 'chromium', env: 'CORRAL_TOOL_CHROMIUM' },
  /** helm (go install), for the chart test. */
  helm: { group: 'helm', key: 'helm', env: 'CORRAL_TOOL_HELM' },
  /** Debian's prometheus and promtool, for the dashboard and alerting-rules test. */
  prometheus: { group: 'prometheus', key: 'prometheus', env: 'CORRAL_TOOL_PROMETHEUS' },
  promtool: { group: 'prometheus', key: 'promtool', env: 'CORRAL_TOOL_PROMTOOL' },
  /** A real node (test/harness/real-node.ts): the kubelet, built at the apiserver's version. */
  kubelet: { group: 'node', key: 'kubelet', env: 'CORRAL_TOOL_KUBELET' },
  /** The real node's kube-controller-manager (node lifecycle, deployments, service accounts, GC). */
  kubeControllerManager: { group: 'node', key: 'kube_controller_manager', env: 'CORRAL_TOOL_KUBE_CONTROLLER_MANAGER' },
  /** Debian's containerd and its client ctr, runc, and the CNI plugins' directory (bridge, host-local). */
  containerd: { group: 'node', key: 'containerd', env: 'CORRAL_TOOL_CONTAINERD' },
  ctr: { group: 'node', key: 'ctr', env: 'CORRAL_TOOL_CTR' },
  runc: { group: 'node', key: 'runc', env: 'CORRAL_TOOL_RUNC' },
  cniBinDir: { group: 'node', key: 'cni_bin_dir', env: 'CORRAL_TOOL_CNI_BIN_DIR' },
  /** Debian's busybox-static: the shell of the real node's worker image. */
  busyboxStatic: { group: 'node', key: 'busybox_static', env: 'CORRAL_TOOL_BUSYBOX_STATIC' },
  /** The real node images' static binaries (pause, memhog), in the tool cache. */
  nodeRootfs: { group: 'node', key: 'node_rootfs', env: 'CORRAL_TOOL_NODE_ROOTFS' },
  /** Docker Compose v2, built as a docker CLI plugin (the compose test). */
  dockerComposePlugin: { group: 'compose', key: 'docker_compose_plugin', env: 'CORRAL_TOOL_DOCKER_COMPOSE_PLUGIN' },
  /** Temporal's ui-server and its docker config: the compose test's stand-in for temporalio/ui. */
  temporalUiServer: { group: 'compose', key: 'temporal_ui_server', env: 'CORRAL_TOOL_TEMPORAL_UI_SERVER' },
  /** PostgreSQL 16.4's server binaries (bin/, lib/, share/): the compose test's stand-in for postgres. */
  postgresServer: { group: 'compose', key: 'postgres_server', env: 'CORRAL_TOOL_POSTGRES_SERVER' },
  /** Temporal server and SQL tool (bin/), Postgres schemas, docker config: the stand-in for temporalio/auto-setup. */
  temporalServer: { group: 'compose', key: 'temporal_server', env: 'CORRAL_TOOL_TEMPORAL_SERVER' },
  /** Debian's dockerd (test/harness/docker-engine.ts runs a private one) and the docker CLI it is driven with. */
  dockerd: { group: 'images', key: 'dockerd', env: 'CORRAL_TOOL_DOCKERD' },
  docker: { group: 'images', key: 'docker', env: 'CORRAL_TOOL_DOCKER' },
  /** The buildx CLI plugin (BuildKit builds), built from the Go module proxy. */
  dockerBuildx: { group: 'images', key: 'docker_buildx', env: 'CORRAL_TOOL_DOCKER_BUILDX' },
  /** The base-image stand-ins' root-filesystem tarballs and images.tsv (tag, tarball, import changes). */
  baseImages: { group: 'images', key: 'base_images', env: 'CORRAL_TOOL_BASE_IMAGES' },
} as const;

export type ToolName = keyof typeof tools;
export type ToolGroup = (typeof tools)[ToolName]['group'];

/** Runs the (idempotent) provisioning script for some groups; returns tool paths as env vars. */
export function provisionTools(groups: ToolGroup[]): Record<string, string> {
  const out = execFileSync('bash', [path.join(repoRoot, 'scripts', 'provision-tools.sh'), ...groups], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const env: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const eq = line.indexOf('=');
    const tool = Object.values(tools).find((t) => t.key === line.slice(0, eq));
    if (eq > 0 && tool) env[tool.env] = line.slice(eq + 1);
  }
  return env;
}

export function toolPath(name: ToolName): string {
  const tool = tools[name];
  const fromEnv = process.env[tool.env];
  if (fromEnv) return fromEnv;
  const env = provisionTools([tool.group]);
  // The group's other tools too, but never over a path the caller set explicitly.
  for (const [name, value] of Object.entries(env)) process.env[name] ||= value;
  const found = env[tool.env];
  if (!found) throw new Error(`scripts/provision-tools.sh did not report a path for ${name}`);
  return found;
}
