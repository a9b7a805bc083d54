// Writes the corral API's OpenAPI document (generated from the route schemas) to
// docs/api/openapi.json. Run after changing src/api: `node --require tsx/cjs scripts/write-openapi.ts`.
// test/e2e/corral-api.test.ts fails while the committed file differs from what the API serves.
import fs from 'node:fs';
import path from 'node:path';
import { openApiDocument } from '../src/api/api-server';
import { repoRoot } from '../src/embedded/tools';

async function main(): Promise<void> {
  const file = path.join(repoRoot, 'docs', 'api', 'openapi.json');
  fs.writeFileSync(file, `${JSON.stringify(await openApiDocument(), null, 2)}\n`);
  console.log(`wrote ${path.relative(repoRoot, file)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
