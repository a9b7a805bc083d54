// One Kubernetes watch connection, on node's https with client-node's auth and TLS options.
// Not client-node's Watch: that one has no client-side bound (it overwrites its own timeout
// signal) and hands back its AbortController only once headers arrive, so a connection that
// is accepted but never answered could neither time out nor be cancelled. Here the caller can
// abort at any moment, response headers must arrive within `headerTimeoutMs`, and a stream
// silent for `idleTimeoutMs` (no event, no bookmark) is closed as an error.
//
// A watch never keeps the process alive by itself (socket and timers are unref'd): it feeds a
// background cache (pod-informer.ts), and whoever waits on that cache holds its own timer.
import http from 'node:http';
import https from 'node:https';
import readline from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node';

export interface WatchStreamHandlers {
  /** Response headers arrived with 200: the watch is open. */
  onOpen(): void;
  /** One watch event (`{type, object}`), parsed. */
  onEvent(type: string, object: Record<string, unknown>): void;
  /** The stream ended: `undefined` when the server closed it normally, else why. */
  onEnd(error: (Error & { statusCode?: number }) | undefined): void;
}

export interface WatchStreamOptions {
  headerTimeoutMs: number;
  idleTimeoutMs: number;
}

/** Opens the watch; returns a function that aborts it. Handlers never fire after an abort. */
export async function openWatchStream(
  kubeConfig: KubeConfig,
  url: URL,
  options: WatchStreamOptions,
  handlers: WatchStreamHandlers,
): Promise<() => void> {
  const requestOptions: https.RequestOptions = {};
  await kubeConfig.applyToHTTPSOptions(requestOptions);
  let finished = false;
  let idleTimer: NodeJS.Timeout | undefined;
  const finish = (error?: Error & { statusCode?: number }) => {
    if (finished) return;
    finished = true;
    clearTimeout(headerTimer);
    clearTimeout(idleTimer);
    request.destroy();
    handlers.onEnd(error);
  };
  const armIdle = () => {
    clearTimeout(idleTimer);
    if (finished) return;
    idleTimer = setTimeout(
      () => finish(new Error(`watch stream silent for ${Math.round(options.idleTimeoutMs / 1000)}s`)),
      options.idleTimeoutMs,
    );
    idleTimer.unref();
  };
  const transport = url.protocol === 'http:' ? http : https;
  const request = transport.request(url, {
    ...requestOptions,
    method: 'GET',
    headers: { ...requestOptions.headers, Accept: 'application/json' },
  });
  const headerTimer = setTimeout(
    () => finish(new Error(`no response to the watch within ${Math.round(options.headerTimeoutMs / 1000)}s`)),
    options.headerTimeoutMs,
  );
  headerTimer.unref();
  request.on('socket', (socket) => socket.unref());
  request.on('error', (err) => finish(err));
  request.on('response', (response) => {
    clearTimeout(headerTimer);
    if (finished) return response.resume();
    if (response.statusCode !== 200) {
      response.resume();
      const status = response.statusCode ?? 0;
      return finish(Object.assign(new Error(`watch answered HTTP ${status}`), { statusCode: status }));
    }
    handlers.onOpen();
    // onOpen may have aborted the watch (a caller acting on "now waiting"): nothing more to do.
    if (finished) return response.resume();
    armIdle();
    const lines = readline.createInterface({ input: response, crlfDelay: Infinity });
    // readline re-emits the response's errors (e.g. "aborted" when we destroy it): an unheard one would crash.
    lines.on('error', (err) => finish(err));
    lines.on('line', (line) => {
      if (finished || line.trim() === '') return;
      armIdle();
      let event: { type?: string; object?: Record<string, unknown> };
      try {
        event = JSON.parse(line) as typeof event;
      } catch {
        return finish(new Error('watch stream sent a line that is not JSON'));
      }
      handlers.onEvent(event.type ?? '', event.object ?? {});
    });
    response.on('error', (err) => finish(err));
    response.on('end', () => finish());
    // A close without an end is a cut connection (apiserver gone), not a server-side timeout.
    response.on('close', () => finish(new Error('watch connection closed before the stream ended')));
  });
  request.end();
  return () => {
    if (finished) return;
    finished = true;
    clearTimeout(headerTimer);
    clearTimeout(idleTimer);
    request.destroy();
  };
}
