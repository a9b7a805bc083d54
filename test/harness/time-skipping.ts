import { TestWorkflowEnvironment } from '@temporalio/testing';
import { toolPath } from '../../src/embedded/tools';

/**
 * The time-skipping test server (Java, from Maven Central) behind the executable wrapper that
 * scripts/provision-tools.sh writes. The SDK would otherwise download it at run time, which
 * this machine cannot do.
 */
export function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: toolPath('temporalTestServer') } },
  });
}
