// The kube-apiserver in tests has no nodes, so tests play kubelet: they write the status a
// kubelet would write through the `pods/status` subresource, and the runtime's watch sees it.
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';

export class FakeKubelet {
  private readonly core: CoreV1Api;
  constructor(
    kubeConfig: KubeConfig,
    private readonly namespace: string,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  async setStatus(podName: string, status: Record<string, unknown>): Promise<void> {
    await this.core.patchNamespacedPodStatus(
      { namespace: this.namespace, name: podName, body: { status } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }
}
