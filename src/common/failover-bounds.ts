// How fast work held by a corral replica that died (kill -9, a lost node) continues on another:
// the bounds every part of corral uses, in one place, so the failover budget (≤ 10 s) adds up.
// Workflow-safe (no Node, no I/O): workflows size their activities' heartbeat timeouts from it.
// docs/decisions/0019-prompt-drains-and-failover.md
//
// A workflow task in flight on the dead replica is retried after `workflowTaskTimeoutMs`; one
// waiting on its sticky queue moves to the shared queue after `stickyScheduleToStartMs`; an
// activity it ran is noticed after `activityHeartbeatTimeoutMs` and retried a second later; its
// result's workflow task then waits out the sticky bound once (the workflow was cached on the dead
// replica): 4 + 1 + 2 s plus dispatch, measured by bench/chaos (replica-kill). Local activities
// die with their workflow task and run again with it.
export const failoverBounds = {
  workflowTaskTimeoutMs: 5_000,
  stickyScheduleToStartMs: 2_000,
  activityHeartbeatTimeoutMs: 4_000,
  /** How often a long activity heartbeats (the SDK throttles at 80 % of the timeout anyway). */
  activityHeartbeatIntervalMs: 1_000,
} as const;
