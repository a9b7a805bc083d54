// A real control plane for integration tests: etcd + kube-apiserver + kube-scheduler (built from
// the Go module proxy by scripts/provision-tools.sh) with RBAC on and a service-account token
// issuer, so tests can act as a restricted identity; and KWOK playing the nodes and the kubelet
// (test/harness/kwok.ts): the scheduler binds pods to KWOK's fake Nodes, and KWOK's Stages
// (test/fixtures/kwok/) write pod status as a kubelet would, pod IPs in 127.0.0.0/8.
// There is no controller-manager: no namespace deletion, no node lifecycle, no garbage collection.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { startProcess, failOnExit, type ManagedProcess } from '../../src/embedded/child-process';
import { freePort } from '../../src/embedded/ports';
import { toolPath } from '../../src/embedded/tools';
import { waitFor } from '../../src/embedded/wait';
import { createKwokNodes, startKwokProcesses, writeKubeconfigFile, type KwokProcesses } from './kwok';
import { httpsOk, kubeApiserverArgs, writeServiceAccountKeys } from './kube-control-plane';

/** What a test needs to talk to a cluster; serialisable so the runner can share one. */
export interface KubeEndpoint {
  server: string;
  /** Bearer token of a `system:masters` identity. */
  adminToken: string;
  /** PEM of the apiserver's self-signed serving certificate chain. */
  caFile: string;
}

export interface RunningKube extends KubeEndpoint {
  /** etcd's client URL (its JSON gateway lets a test compact history to provoke 410 Gone). */
  etcdUrl: string;
  /** The apiserver's serving key (its certificate is `caFile`), so a test proxy can pose as it. */
  servingKeyFile: string;
  /** Stops only the apiserver (etcd keeps the data), e.g. to test watch resumption. */
  stopApiserver(): Promise<void>;
  /** Starts the apiserver again on the same port, certificates and keys. */
  startApiserver(): Promise<void>;
  /** The kube-scheduler and KWOK processes (they ride out an apiserver restart on their own). */
  kwok: KwokProcesses;
  stop(): Promise<void>;
}

export interface StartKubeOptions {
  extraApiserverArgs?: string[];
  /** KWOK nodes to create up front (kwok-node-0…; see createKwokNodes for more later). Default 2. */
  nodes?: number;
}

export function kubeConfigFor(endpoint: KubeEndpoint, token = endpoint.adminToken): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'corral-test', server: endpoint.server, caFile: endpoint.caFile, skipTLSVerify: false }],
    users: [{ name: 'corral-test-user', token }],
    contexts: [{ name: 'corral-test', cluster: 'corral-test', user: 'corral-test-user' }],
    currentContext: 'corral-test',
  });
  return kc;
}

export async function startKube(options: StartKubeOptions = {}): Promise<RunningKube> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-kube-'));
  const [etcdClientPort, etcdPeerPort, apiPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
  const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;

  const etcd = startProcess('etcd', toolPath('etcd'), [
    '--name=corral-test',
    `--data-dir=${path.join(dir, 'etcd')}`,
    `--listen-client-urls=${etcdUrl}`,
    `--advertise-client-urls=${etcdUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=corral-test=${peerUrl}`,
    '--log-level=warn',
    // Test data is disposable; fsync would only slow the suite down.
    '--unsafe-no-fsync',
  ]);
  try {
    await Promise.race([
      failOnExit(etcd),
      waitFor(async () => (await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(1_000) })).ok, {
        what: 'etcd health',
        timeoutMs: 30_000,
      }),
    ]);
  } catch (err) {
    await etcd.stop();
    throw err;
  }

  const adminToken = crypto.randomBytes(24).toString('hex');
  fs.writeFileSync(
    path.join(dir, 'tokens.csv'),
    `${adminToken},corral-test-admin,corral-test-admin,"system:masters"\n`,
    {
      mode: 0o600,
    },
  );
  writeServiceAccountKeys(dir);
  const certDir = path.join(dir, 'certs');
  const apiArgs = [
    ...kubeApiserverArgs({ etcdUrl, port: apiPort, dir, certDir }),
    ...(options.extraApiserverArgs ?? []),
  ];
  const server = `https://127.0.0.1:${apiPort}`;
  const caFile = path.join(certDir, 'apiserver.crt');
  let apiserver: ManagedProcess | undefined;

  const startApiserver = async () => {
    const proc = startProcess('kube-apiserver', toolPath('kubeApiserver'), apiArgs);
    apiserver = proc;
    try {
      await Promise.race([
        failOnExit(proc),
        waitFor(async () => fs.existsSync(caFile) && httpsOk(`${server}/readyz`, adminToken, fs.readFileSync(caFile)), {
          what: 'kube-apiserver /readyz',
          timeoutMs: 90_000,
          intervalMs: 200,
        }),
      ]);
    } catch (err) {
      await proc.stop();
      throw err;
    }
  };
  const stopApiserver = async () => {
    await apiserver?.stop();
    apiserver = undefined;
  };

  try {
    await startApiserver();
  } catch (err) {
    await etcd.stop();
    throw err;
  }

  const kubeconfigFile = path.join(dir, 'kubeconfig.json');
  writeKubeconfigFile(kubeconfigFile, { server, caFile, token: adminToken });
  let kwok: KwokProcesses;
  try {
    kwok = await startKwokProcesses(kubeconfigFile, dir);
  } catch (err) {
    await stopApiserver();
    await etcd.stop();
    throw err;
  }
  try {
    const nodes = options.nodes ?? 2;
    if (nodes > 0) await createKwokNodes(kubeConfigFor({ server, adminToken, caFile }), { count: nodes });
  } catch (err) {
    await kwok.stop();
    await stopApiserver();
    await etcd.stop();
    throw err;
  }

  return {
    server,
    etcdUrl,
    servingKeyFile: path.join(certDir, 'apiserver.key'),
    adminToken,
    caFile,
    startApiserver,
    stopApiserver,
    kwok,
    async stop() {
      await kwok.stop();
      await stopApiserver();
      await etcd.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
