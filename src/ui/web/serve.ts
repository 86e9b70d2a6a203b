/**
 * klab ui: serve the lab's page until Ctrl-C. The page's actions are the application calls
 * of the matching commands (src/app/ui.ts); their events go to the page, to this run's
 * log and to the terminal, like any command's.
 */
import { listenHttp } from '../../adapters/http-server.js';
import { runProcess } from '../../adapters/process.js';
import { openLab } from '../../app/lab.js';
import { labUiBackend } from '../../app/ui.js';
import { type EventSink, notice, result } from '../../model/events.js';
import { interrupt } from '../../model/interrupt.js';
import type { Language } from '../../model/lesson.js';
import { createWebApp, newToken } from './server.js';

export interface ServeUiOptions {
  dir: string;
  sink: EventSink;
  port: number;
  open: boolean;
  /** An address other than loopback, given explicitly (--listen). */
  listen?: string;
  defaultLang: Language;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Host headers that name this server on loopback: no other name may reach it (rebinding). */
export function loopbackHosts(port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]);
}

export async function serveUi(options: ServeUiOptions): Promise<void> {
  const { sink } = options;
  // A directory without a lab says so now, not on every request of the page.
  await openLab({ dir: options.dir, sink });
  const host = options.listen ?? '127.0.0.1';
  const exposed = !LOOPBACK.has(host);
  if (exposed) {
    notice(
      sink,
      'UI_NOT_LOOPBACK',
      `klab ui listens on ${host}: other machines that reach this address can open the page, guarded only by its token. Without --listen it stays on 127.0.0.1.`,
    );
  }
  const token = newToken();
  let allowed = new Set<string>();
  const web = createWebApp({
    backend: labUiBackend({ dir: options.dir }),
    token,
    hostAllowed: (name) => exposed || allowed.has(name),
    defaultLang: options.defaultLang,
    actionLog: (action) => ({
      sink,
      close(answer) {
        notice(
          sink,
          'UI_ACTION_DONE',
          `${action.kind}${'id' in action ? ` ${action.id}` : ''}: ${answer.ok ? 'ok' : answer.code} ${answer.message}`,
          answer.ok ? 'info' : 'warn',
        );
      },
    }),
  });
  const server = await listenHttp(web.app.fetch, host, options.port);
  allowed = loopbackHosts(server.port);
  const shownHost = exposed ? (host.includes(':') ? `[${host}]` : host) : '127.0.0.1';
  const url = `http://${shownHost}:${server.port}/?token=${token}`;
  result(sink, 'UI_LISTENING', `klab ui: open ${url}\n(Ctrl-C stops it.)`, {
    kind: 'UiServer',
    url,
    port: server.port,
  });
  if (options.open) {
    const opened = await runProcess(['xdg-open', url], { timeoutMs: 10_000 }).catch(
      () => undefined,
    );
    if (opened?.exitCode !== 0) {
      notice(
        sink,
        'HOST_WARNING',
        'Could not open a browser (xdg-open); open the URL above yourself.',
      );
    }
  }
  const signal = await interrupt.whenRequested();
  // An action in flight stops at its next safe point (the same interrupt), then we close.
  await web.idle();
  await server.close();
  notice(sink, 'UI_STOPPED', `klab ui stopped (${signal}).`, 'info');
}
