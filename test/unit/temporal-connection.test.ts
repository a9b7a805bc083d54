// The Temporal connection settings (src/config/temporal-connection.ts): the CLI's variable names,
// what implies TLS, and an error naming the variable for every unusable setting.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import {
  clientConnectionOptions,
  describeTemporalConnection,
  nativeConnectionOptions,
  temporalConnectionFromEnv,
  TemporalConnectionConfigError,
} from '../../src/config/temporal-connection';
import { createTestPki, type TestPki } from '../harness/tls-proxy';

let pki: TestPki;
before(() => {
  pki = createTestPki();
});
after(() => pki?.close());

function refused(env: NodeJS.ProcessEnv, variable: string, reason: RegExp): void {
  assert.throws(
    () => temporalConnectionFromEnv(env),
    (err) => err instanceof TemporalConnectionConfigError && err.variable === variable && reason.test(err.message),
  );
}

test('nothing set: plaintext; TEMPORAL_TLS=true: TLS with the system CAs', () => {
  const plain = temporalConnectionFromEnv({});
  assert.deepEqual(plain, { transport: 'plaintext', tls: false, apiKey: undefined, sources: [] });
  assert.deepEqual(clientConnectionOptions('t:7233', plain, { connectTimeout: 5 }), {
    address: 't:7233',
    tls: false,
    connectTimeout: 5,
  });
  const tls = temporalConnectionFromEnv({ TEMPORAL_TLS: 'true' });
  assert.equal(tls.transport, 'TLS');
  assert.deepEqual(tls.tls, {});
  assert.equal(describeTemporalConnection(tls), 'TLS');
});

test('an API key implies TLS, unless TEMPORAL_TLS=false; it reaches both connection kinds and no description', () => {
  const cloud = temporalConnectionFromEnv({ TEMPORAL_API_KEY: 'k-123' });
  assert.equal(cloud.transport, 'TLS');
  assert.equal(describeTemporalConnection(cloud), 'TLS + API key');
  assert.deepEqual(nativeConnectionOptions('a:1', cloud), { address: 'a:1', tls: {}, apiKey: 'k-123' });
  assert.equal(clientConnectionOptions('a:1', cloud).apiKey, 'k-123');
  const plain = temporalConnectionFromEnv({ TEMPORAL_API_KEY: 'k-123', TEMPORAL_TLS: 'false' });
  assert.equal(plain.tls, false);
  assert.match(describeTemporalConnection(plain), /^plaintext \+ API key \(sent unencrypted/);
  assert.ok(!describeTemporalConnection(plain).includes('k-123'));
});

test('mTLS from the legacy and the envconfig names; the legacy name wins, as in the Temporal CLI', () => {
  const legacy = temporalConnectionFromEnv({
    TEMPORAL_TLS_CERT: pki.clientCert,
    TEMPORAL_TLS_KEY: pki.clientKey,
    TEMPORAL_TLS_CA: pki.caCert,
    TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
  });
  assert.equal(legacy.transport, 'mTLS');
  assert.ok(legacy.tls && legacy.tls.clientCertPair && legacy.tls.serverRootCACertificate);
  assert.equal(legacy.tls.serverNameOverride, 'temporal.internal');
  assert.equal(
    describeTemporalConnection(legacy),
    `mTLS (TEMPORAL_TLS_CA=${pki.caCert}, TEMPORAL_TLS_CERT=${pki.clientCert}, TEMPORAL_TLS_KEY=${pki.clientKey}, ` +
      'TEMPORAL_TLS_SERVER_NAME=temporal.internal)',
  );
  const envconfig = temporalConnectionFromEnv({
    TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
    TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
  });
  assert.equal(envconfig.transport, 'mTLS');
  const both = temporalConnectionFromEnv({
    TEMPORAL_TLS_CA: pki.caCert,
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: '/nonexistent',
  });
  assert.deepEqual(both.sources, [`TEMPORAL_TLS_CA=${pki.caCert}`]);
});

test('every unusable setting names its variable', () => {
  refused({ TEMPORAL_TLS_CERT: pki.clientCert }, 'TEMPORAL_TLS_KEY', /required with TEMPORAL_TLS_CERT/);
  refused(
    { TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey },
    'TEMPORAL_TLS_CERT',
    /required with TEMPORAL_TLS_CLIENT_KEY_PATH/,
  );
  refused(
    { TEMPORAL_TLS_CA: '/nonexistent/ca.pem' },
    'TEMPORAL_TLS_CA',
    /cannot read \/nonexistent\/ca\.pem \(ENOENT\)/,
  );
  refused({ TEMPORAL_TLS_CA: pki.dir }, 'TEMPORAL_TLS_CA', /cannot read .* \(EISDIR\)/);
  refused({ TEMPORAL_TLS_CA: pki.clientKey }, 'TEMPORAL_TLS_CA', /is not a PEM certificate/);
  refused(
    { TEMPORAL_TLS_CERT: pki.clientCert, TEMPORAL_TLS_KEY: pki.serverKey },
    'TEMPORAL_TLS_KEY',
    /is not the key of the certificate in/,
  );
  refused(
    { TEMPORAL_TLS_CERT: pki.clientKey, TEMPORAL_TLS_KEY: pki.clientKey },
    'TEMPORAL_TLS_CERT',
    /is not a PEM certificate/,
  );
  refused({ TEMPORAL_TLS: 'yes please' }, 'TEMPORAL_TLS', /expected true or false/);
  refused({ TEMPORAL_TLS: 'false', TEMPORAL_TLS_CA: pki.caCert }, 'TEMPORAL_TLS', /false contradicts TEMPORAL_TLS_CA/);
  refused({ TEMPORAL_TLS_CA_DATA: 'x' }, 'TEMPORAL_TLS_CA_DATA', /mount the PEM as a file and set TEMPORAL_TLS_CA/);
  refused({ TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: 'true' }, 'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION', /SERVER_NAME/);
  const notPem = `${pki.dir}/not.pem`;
  fs.writeFileSync(notPem, 'hello');
  refused({ TEMPORAL_TLS_CA: notPem }, 'TEMPORAL_TLS_CA', /is not PEM \(no -----BEGIN line\)/);
});
