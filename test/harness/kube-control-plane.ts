// What every test control plane shares, whoever plays the kubelet (KWOK in kube.ts, a real one in
// real-node.ts): the service-account keys, kube-apiserver's, kube-scheduler's and (the real node's)
// kube-controller-manager's flags, and the readiness probe of an HTTPS endpoint.
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';

const serviceAccountIssuer = 'https://kubernetes.default.svc.cluster.local';

/** Writes the key pair that signs and verifies service-account tokens into `dir`. */
export function writeServiceAccountKeys(dir: string): void {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  fs.writeFileSync(path.join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
}

/**
 * kube-apiserver with RBAC, static tokens (`dir/tokens.csv`) and service-account tokens (keys from
 * writeServiceAccountKeys), its serving certificate (made in `certDir`) naming `address`: loopback
 * unless another local address is given (the real node's, which its pods can reach).
 */
export function kubeApiserverArgs(o: {
  etcdUrl: string;
  port: number;
  dir: string;
  certDir: string;
  address?: string;
}): string[] {
  const address = o.address ?? '127.0.0.1';
  return [
    `--etcd-servers=${o.etcdUrl}`,
    `--bind-address=${address}`,
    `--advertise-address=${address}`,
    `--secure-port=${o.port}`,
    `--cert-dir=${o.certDir}`,
    `--token-auth-file=${path.join(o.dir, 'tokens.csv')}`,
    '--authorization-mode=RBAC',
    `--service-account-issuer=${serviceAccountIssuer}`,
    `--api-audiences=${serviceAccountIssuer}`,
    `--service-account-key-file=${path.join(o.dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${path.join(o.dir, 'sa.key')}`,
    '--service-cluster-ip-range=10.96.0.0/24',
    '--enable-priority-and-fairness=false',
    '--profiling=false',
    '--v=1',
  ];
}

/** The real kube-scheduler against `kubeconfigFile`, serving its own endpoints on loopback. */
export function kubeSchedulerArgs(o: { kubeconfigFile: string; port: number; certDir: string }): string[] {
  return [
    `--kubeconfig=${o.kubeconfigFile}`,
    `--authentication-kubeconfig=${o.kubeconfigFile}`,
    `--authorization-kubeconfig=${o.kubeconfigFile}`,
    '--leader-elect=false',
    '--bind-address=127.0.0.1',
    `--secure-port=${o.port}`,
    `--cert-dir=${o.certDir}`,
    '--profiling=false',
    '--v=1',
  ];
}

/**
 * The controllers a real node's workloads need, no more: Deployments and their ReplicaSets, each
 * namespace's `default` ServiceAccount and `kube-root-ca.crt` ConfigMap (what a projected
 * service-account token volume mounts as ca.crt), namespace deletion, owner-reference garbage
 * collection, and the node lifecycle (it lifts the kubelet's not-ready taint).
 */
const realNodeControllers = [
  'deployment-controller',
  'replicaset-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'root-ca-certificate-publisher-controller',
  'namespace-controller',
  'garbage-collector-controller',
  'node-lifecycle-controller',
] as const;

/** kube-controller-manager with realNodeControllers, serving its own endpoints on loopback. */
export function kubeControllerManagerArgs(o: {
  kubeconfigFile: string;
  port: number;
  certDir: string;
  /** Signs legacy service-account token Secrets (the serviceaccount-token controller needs one). */
  serviceAccountKeyFile: string;
  /** The apiserver's CA, published in every namespace as ConfigMap kube-root-ca.crt. */
  rootCaFile: string;
}): string[] {
  return [
    `--kubeconfig=${o.kubeconfigFile}`,
    `--authentication-kubeconfig=${o.kubeconfigFile}`,
    `--authorization-kubeconfig=${o.kubeconfigFile}`,
    `--controllers=${realNodeControllers.join(',')}`,
    `--service-account-private-key-file=${o.serviceAccountKeyFile}`,
    `--root-ca-file=${o.rootCaFile}`,
    '--leader-elect=false',
    '--bind-address=127.0.0.1',
    `--secure-port=${o.port}`,
    `--cert-dir=${o.certDir}`,
    '--profiling=false',
    '--v=1',
  ];
}

/** Whether `url` answers 200 (a bearer token if given; the CA pinned if given, else unverified). */
export async function httpsOk(url: string, token?: string, ca?: Buffer): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      url,
      {
        headers: token ? { Authorization: `Bearer ${token}` } : {},
        ca,
        rejectUnauthorized: ca !== undefined,
        timeout: 2_000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout on ${url}`)));
    req.on('error', reject);
  });
}
