// corral's workflow code, bundled once per test process. A Worker.create or runReplayHistory given
// `workflowsPath` runs webpack again every time (seconds of CPU each); the fast loop creates a
// worker per time-skipping test and replays dozens of histories, so it shares one bundle
// (decision 0027). Each worker still gets its own sandbox from the bundle's code.
import { bundleWorkflowCode, Runtime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

export function corralWorkflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: require.resolve('../../src/workflows'),
    logger: Runtime.instance().logger,
  });
  return bundle;
}
