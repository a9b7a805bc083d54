// History events per idle worker-hour: what a warm, unclaimed worker costs Temporal in steady
// state. Runs workerLifecycleWorkflow on the time-skipping server (activities mocked; health
// probes off, because the test server cannot skip time while the monitor activity runs, and a
// running monitor writes no events until its verdict anyway), lets each worker sit idle for
// `hours` of workflow time, and counts the events written meanwhile.
// Usage: node --require tsx/cjs bench/lifecycle-history.ts [hours]   → JSON on stdout
import { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { describeQuery } from '../src/common';
import {
  day,
  hour,
  minute,
  startLifecycle,
  useLifecycleTimeSkipping,
  waitForState,
} from '../test/harness/lifecycle-env';

const EventType = temporal.api.enums.v1.EventType;

async function main() {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const hours = Number(process.argv[2] ?? 24);
  const { env, world, stop } = await useLifecycleTimeSkipping('bench-history');
  // Credential TTLs bracket what pools use: the 5-minute floor's neighbourhood, an hour, a day.
  const scenarios = [
    { name: 'credential_ttl_15m', credentialTtlMs: 15 * minute, credentialRefreshLeadMs: 3 * minute },
    { name: 'credential_ttl_1h', credentialTtlMs: hour, credentialRefreshLeadMs: 5 * minute },
    { name: 'credential_ttl_24h', credentialTtlMs: day, credentialRefreshLeadMs: hour },
  ];
  const results = [];
  try {
    for (const scenario of scenarios) {
      const handle = await startLifecycle(env, 'bench-history', {
        settings: { idleTtlMs: null, maxLifetimeMs: 400 * day, ...scenario },
      });
      await waitForState(handle, 'idle');
      const before = (await handle.fetchHistory()).events?.length ?? 0;
      await env.sleep(hours * hour);
      const events = (await handle.fetchHistory()).events ?? [];
      const byType: Record<string, number> = {};
      for (const event of events.slice(before)) {
        const type = EventType[event.eventType ?? 0].replace(/^EVENT_TYPE_/, '');
        byType[type] = (byType[type] ?? 0) + 1;
      }
      const idleEvents = events.length - before;
      results.push({
        scenario: scenario.name,
        idleHours: hours,
        events: idleEvents,
        eventsPerIdleHour: Number((idleEvents / hours).toFixed(2)),
        spawnToIdleEvents: before,
        refreshes: world
          .trail((await handle.query(describeQuery)).workerId)
          .filter((t) => t.operation === 'refresh_credentials').length,
        byType,
      });
      await handle.terminate('bench done');
    }
  } finally {
    await stop();
  }
  console.log(
    JSON.stringify(
      {
        benchmark: 'lifecycle_history_events_per_idle_hour',
        goal: 12,
        // The health monitor is one long activity: it writes nothing between its start and its verdict.
        healthMonitor: 'one long-running activity; no events while healthy',
        results,
      },
      null,
      1,
    ),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
