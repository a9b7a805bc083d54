// Loaded with --require into every test process: Temporal's SDK logs at INFO by default, which
// buries test output under webpack bundle reports. Override with CORRAL_TEST_LOG_LEVEL=DEBUG.
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';

const level = (process.env.CORRAL_TEST_LOG_LEVEL ?? 'WARN') as LogLevel;
Runtime.install({ logger: new DefaultLogger(level) });
