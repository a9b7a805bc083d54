// Headless Chromium for end-to-end tests of web pages (the Temporal Web UI): Debian's chromium
// (provisioned by scripts/provision-tools.sh) driven by playwright-core, which never downloads a
// browser. The flags keep Chromium off the network except for the pages a test opens: without
// them it keeps calling Google services, which on a closed network only fills logs and slows it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { repoRoot, toolPath } from '../../src/embedded/tools';

export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-quic',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-domain-reliability',
  '--metrics-recording-only',
];

export interface HeadlessBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/**
 * A fresh browser with one page. Every Playwright action and navigation is bounded by
 * `timeoutMs` (Playwright's own timeouts), so a page that never renders fails, not hangs.
 */
export async function launchHeadlessChromium(
  opts: { viewport?: { width: number; height: number }; timeoutMs?: number } = {},
): Promise<HeadlessBrowser> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const browser = await chromium.launch({
    executablePath: toolPath('chromium'),
    // playwright-core adds its own --headless and --user-data-dir (a fresh temp profile).
    headless: true,
    args: chromiumArgs,
    timeout: 60_000,
  });
  try {
    const context = await browser.newContext({
      viewport: opts.viewport ?? { width: 1440, height: 900 },
      // The UI renders dates in the browser's zone; fixed so screenshots do not depend on the host.
      timezoneId: 'UTC',
      locale: 'en-US',
    });
    context.setDefaultTimeout(timeoutMs);
    context.setDefaultNavigationTimeout(timeoutMs);
    const page = await context.newPage();
    return {
      browser,
      context,
      page,
      async close() {
        await context.close().catch(() => undefined);
        await browser.close();
      },
    };
  } catch (err) {
    await browser.close();
    throw err;
  }
}

/** Where tests keep screenshots: test-results/artifacts (gitignored, kept after the run). */
export function artifactPath(name: string): string {
  const dir = path.join(repoRoot, 'test-results', 'artifacts');
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}

/** A throwaway directory (e.g. a stack's state dir), removed by the caller. */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
