import { TestWorkflowEnvironment } from '@temporalio/testing';
import { toolPath } from '../../src/embedded/tools';

/**
 * The SDK's core gives the test server a fixed 5 s to accept connections and kills it when it has
 * not; a JVM on a busy 2-core machine can take longer. A start that timed out is tried again (the
 * failed one is already gone), a bounded number of times; any other error is not.
 */
const startAttempts = 4;
const startupTimeout = /ephemeral server at .* did not start within/;

/**
 * The time-skipping test server (Java, from Maven Central) behind the executable wrapper that
 * scripts/provision-tools.sh writes. The SDK would otherwise download it at run time, which
 * this machine cannot do.
 */
export async function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  const path = toolPath('temporalTestServer');
  for (let attempt = 1; ; attempt++) {
    try {
      return await TestWorkflowEnvironment.createTimeSkipping({
        server: { executable: { type: 'existing-path', path } },
      });
    } catch (err) {
      if (attempt >= startAttempts || !startupTimeout.test(err instanceof Error ? err.message : String(err))) throw err;
      console.warn(
        `time-skipping server did not start in time (attempt ${attempt}/${startAttempts}); starting another`,
      );
    }
  }
}
