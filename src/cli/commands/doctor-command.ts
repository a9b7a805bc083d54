// `corral doctor`: one row per check; exit 1 when any fails (the failing rows say what to fix).
import type { Command } from 'commander';
import { ReportedFailure, UsageError } from '../cli-errors';
import type { DoctorCheck } from '../doctor-checks';
import { resolveEndpointsLoosely } from '../endpoints';
import { loadDoctorChecks } from '../lazy-modules';
import { formatTable, printJson } from '../output';

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check that the registry, Temporal and (for kubernetes) RBAC are ready for corral')
    .option('--temporal-address <host:port>', 'Temporal frontend (env TEMPORAL_ADDRESS)')
    .option('--namespace <name>', 'Temporal namespace (env TEMPORAL_NAMESPACE)')
    .option('--runtime <process|kubernetes>', 'the runtime to check (env CORRAL_RUNTIME)')
    .option('--kube-namespace <name>', 'kubernetes: the namespace corral runs pods in (env CORRAL_KUBE_NAMESPACE)')
    .option('--kubeconfig <file>', 'kubernetes: a kubeconfig (default: $KUBECONFIG, ~/.kube/config or in-cluster)')
    .addHelpText(
      'after',
      '\nChecks only what is configured: the registry when DATABASE_URL is set (or `make start` runs),\n' +
        'Temporal when an address is known, RBAC when the runtime is kubernetes.\n' +
        'Temporal is reached as `corral worker` reaches it: TEMPORAL_TLS, TEMPORAL_TLS_CA, TEMPORAL_TLS_CERT,\n' +
        'TEMPORAL_TLS_KEY, TEMPORAL_TLS_SERVER_NAME, TEMPORAL_API_KEY; the report names the transport, never the key.',
    )
    .action(
      async (
        opts: {
          temporalAddress?: string;
          namespace?: string;
          runtime?: string;
          kubeNamespace?: string;
          kubeconfig?: string;
        },
        command: Command,
      ) => {
        const { json } = command.optsWithGlobals<{ json?: boolean }>();
        const endpoints = resolveEndpointsLoosely(opts);
        const runtime = opts.runtime ?? process.env.CORRAL_RUNTIME ?? 'process';
        if (runtime !== 'process' && runtime !== 'kubernetes') {
          throw new UsageError(`--runtime: unknown runtime "${runtime}"; expected process or kubernetes`);
        }
        const kubeNamespace = opts.kubeNamespace ?? process.env.CORRAL_KUBE_NAMESPACE;
        if (runtime === 'kubernetes' && !kubeNamespace) {
          throw new UsageError('--kube-namespace: required with the kubernetes runtime (or set CORRAL_KUBE_NAMESPACE)');
        }
        const { checkKubernetes, checkRegistry, checkTemporal } = loadDoctorChecks();
        const pending: Promise<DoctorCheck | DoctorCheck[]>[] = [];
        if (endpoints.databaseUrl) pending.push(checkRegistry(endpoints.databaseUrl));
        if (endpoints.temporalAddress) pending.push(checkTemporal(endpoints.temporalAddress, endpoints.namespace));
        if (runtime === 'kubernetes') pending.push(checkKubernetes(kubeNamespace!, opts.kubeconfig));
        if (pending.length === 0) {
          throw new UsageError('nothing to check: set DATABASE_URL and TEMPORAL_ADDRESS, or pass --runtime kubernetes');
        }
        const checks = (await Promise.all(pending)).flat();
        const ok = checks.every((c) => c.ok);
        if (json) printJson({ ok, checks });
        else {
          console.log(
            formatTable(
              ['CHECK', 'RESULT', 'DETAIL'],
              checks.map((c) => [c.name, c.ok ? 'ok' : 'FAIL', c.detail]),
            ),
          );
        }
        if (!ok) throw new ReportedFailure(`doctor: ${checks.filter((c) => !c.ok).length} check(s) failed`);
      },
    );
}
