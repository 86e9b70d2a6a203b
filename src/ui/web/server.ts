/**
 * klab ui's web application (Hono): the page, its assets and a small JSON API over a
 * UiBackend, with live progress of the running action as server-sent events. Pure request
 * -> response; src/adapters/http-server.ts puts it on a socket.
 *
 * Safety, as notebook servers do it: a random token, printed in the URL by `klab ui`, is
 * needed on every request (in the URL once, then in an HttpOnly SameSite=Strict cookie);
 * a state-changing request is a POST that also carries the token in a header, which a
 * page of another origin cannot send without a CORS preflight that this server never
 * answers; a POST whose Origin is not this server is refused. The Host header must name
 * the loopback address the server listens on (no DNS rebinding). One action at a time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context } from 'hono';
import { Hono } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { streamSSE } from 'hono/streaming';
import { marked } from 'marked';
import type { EventSink, KlabEvent } from '../../model/events.js';
import { LANGUAGES, type Language } from '../../model/lesson.js';
import {
  UI_ACTION_KINDS,
  type UiAction,
  type UiActionResult,
  type UiBackend,
} from '../../model/web-ui.js';
import { lessonMarkdown } from '../lesson-text.js';
import { PAGE_CSS } from './page/style.js';

export const TOKEN_COOKIE = 'klab_ui_token';
export const TOKEN_HEADER = 'x-klab-token';

/** A new random token for one `klab ui` run. */
export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

export interface ActionLog {
  sink: EventSink;
  /** Called once the action ended (close the log file). */
  close(result: UiActionResult): void;
}

export interface WebAppOptions {
  backend: UiBackend;
  token: string;
  /** Whether a request's Host header names this server (set once the port is known). */
  hostAllowed(host: string): boolean;
  /** The language the page starts in (the learner's locale); the page can switch. */
  defaultLang: Language;
  /** Where each action's events go besides the page (the run log, the terminal). */
  actionLog?: (action: UiAction) => ActionLog;
  /** The compiled page script (default: page/app.js beside this module, as tsc builds it); tests from source compile their own. */
  appScript?: string;
}

interface ActionRecord {
  id: string;
  action: UiAction;
  startedAt: string;
  events: PageEvent[];
  result?: UiActionResult;
}

/** What the page receives of an event: no VM output (it can be long and hold secrets). */
export interface PageEvent {
  code: string;
  kind: KlabEvent['kind'];
  text: string;
  ok?: boolean;
  ms?: number;
  level?: 'info' | 'warn';
}

function pageEvent(event: KlabEvent): PageEvent | undefined {
  switch (event.kind) {
    case 'output':
      return undefined;
    case 'task-start':
      return { code: event.code, kind: event.kind, text: event.title };
    case 'task-update':
      return { code: event.code, kind: event.kind, text: event.text };
    case 'task-end':
      return {
        code: event.code,
        kind: event.kind,
        text: event.detail ? `${event.title}: ${event.detail}` : event.title,
        ok: event.ok,
        ms: event.ms,
      };
    case 'notice':
      return { code: event.code, kind: event.kind, text: event.text, level: event.level };
    case 'result':
      return { code: event.code, kind: event.kind, text: event.text };
  }
}

/** Modules the page loads, from klab's own dependencies: nothing comes from the network. */
const VENDOR: Record<string, string> = {
  'preact.mjs': 'preact',
  'hooks.mjs': 'preact/hooks',
  'jsx-runtime.mjs': 'preact/jsx-runtime',
};

/** Where a vendored module's browser build is (wherever npm put the dependency). */
function vendorFile(specifier: string): string {
  return fileURLToPath(import.meta.resolve(specifier));
}

const IMPORT_MAP = JSON.stringify({
  imports: {
    preact: '/assets/preact.mjs',
    'preact/hooks': '/assets/hooks.mjs',
    'preact/jsx-runtime': '/assets/jsx-runtime.mjs',
  },
});

const CSP = [
  "default-src 'none'",
  `script-src 'self' 'sha256-${createHash('sha256').update(IMPORT_MAP).digest('base64')}'`,
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function pageHtml(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>klab</title>
<link rel="stylesheet" href="/assets/style.css">
<script type="importmap">${IMPORT_MAP}</script>
<script type="module" src="/assets/app.js"></script>
</head>
<body><div id="app"><p class="loading">klab …</p></div></body>
</html>
`;
}

function sameToken(given: string | undefined, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function langOf(c: Context, fallback: Language): Language {
  const wanted = c.req.query('lang');
  return (LANGUAGES as readonly string[]).includes(wanted ?? '') ? (wanted as Language) : fallback;
}

function markdownHtml(markdown: string): string {
  return marked.parse(markdown, { async: false, gfm: true });
}

function parseAction(body: unknown): UiAction | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const raw = body as Record<string, unknown>;
  const kind = raw.kind;
  if (typeof kind !== 'string' || !(UI_ACTION_KINDS as readonly string[]).includes(kind)) {
    return undefined;
  }
  const text = (key: string) =>
    typeof raw[key] === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(raw[key])
      ? raw[key]
      : undefined;
  switch (kind) {
    case 'verify':
      return { kind };
    case 'snapshot-save':
    case 'snapshot-restore': {
      const name = text('name');
      return name ? { kind, name } : undefined;
    }
    case 'lesson-start': {
      const id = text('id');
      return id ? { kind, id, here: raw.here === true } : undefined;
    }
    default: {
      const id = text('id');
      return id ? { kind: kind as 'lesson-check' | 'lesson-hint' | 'lesson-solve', id } : undefined;
    }
  }
}

export interface WebApp {
  app: Hono;
  /** Resolves once the running action (if any) has ended. */
  idle(): Promise<void>;
}

export function createWebApp(options: WebAppOptions): WebApp {
  const app = new Hono();
  const actions = new Map<string, ActionRecord>();
  const listeners = new Set<(event: string, data: unknown) => void>();
  let running: { record: ActionRecord; done: Promise<void> } | undefined;

  const broadcast = (event: string, data: unknown) => {
    for (const listener of listeners) listener(event, data);
  };

  app.use('*', async (c, next) => {
    c.header('Content-Security-Policy', CSP);
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('Referrer-Policy', 'no-referrer');
    c.header('X-Frame-Options', 'DENY');
    c.header('Cache-Control', 'no-store');
    c.header('Cross-Origin-Resource-Policy', 'same-origin');
    if (!options.hostAllowed(c.req.header('host') ?? '')) {
      return c.text('klab ui: this host name is not served here (DNS rebinding?)\n', 403);
    }
    const fromUrl = c.req.query('token');
    const fromCookie = getCookie(c, TOKEN_COOKIE);
    if (!sameToken(fromUrl, options.token) && !sameToken(fromCookie, options.token)) {
      return c.text('klab ui: open the URL that "klab ui" printed (it holds the token)\n', 401);
    }
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      if (c.req.method !== 'POST') return c.text('klab ui: method not allowed\n', 405);
      // A POST must carry the token in a header (another origin cannot, without CORS)...
      if (!sameToken(c.req.header(TOKEN_HEADER), options.token)) {
        return c.text('klab ui: state-changing requests need the token header\n', 403);
      }
      // ...and come from this origin.
      const origin = c.req.header('origin');
      const host = c.req.header('host') ?? '';
      if (origin !== undefined && origin !== `http://${host}`) {
        return c.text(`klab ui: cross-origin request from ${origin} refused\n`, 403);
      }
    }
    if (sameToken(fromUrl, options.token) && !sameToken(fromCookie, options.token)) {
      setCookie(c, TOKEN_COOKIE, options.token, {
        httpOnly: true,
        sameSite: 'Strict',
        path: '/',
      });
    }
    await next();
  });

  app.get('/', (c) => c.html(pageHtml()));

  app.get('/assets/:name', async (c) => {
    const name = c.req.param('name');
    if (name === 'style.css') return c.body(PAGE_CSS, 200, { 'Content-Type': 'text/css' });
    const vendor = VENDOR[name];
    const file =
      name === 'app.js'
        ? (options.appScript ?? path.join(import.meta.dirname, 'page', 'app.js'))
        : vendor && vendorFile(vendor);
    if (!file) return c.text('not found\n', 404);
    const body = await readFile(file, 'utf8').catch(() => undefined);
    if (body === undefined) {
      return c.text(`klab ui: ${name} is missing; build klab first (npm run build)\n`, 500);
    }
    return c.body(body, 200, { 'Content-Type': 'text/javascript; charset=utf-8' });
  });

  app.get('/api/config', (c) =>
    c.json({ defaultLang: options.defaultLang, languages: LANGUAGES, tokenHeader: TOKEN_HEADER }),
  );

  app.get('/api/overview', async (c) => {
    const overview = await options.backend.overview();
    return c.json({
      ...overview,
      running: running ? { id: running.record.id, action: running.record.action } : null,
    });
  });

  app.get('/api/components', async (c) => c.json(await options.backend.components()));

  app.get('/api/lessons', async (c) => c.json(await options.backend.lessons()));

  app.get('/api/lessons/:id', async (c) => {
    const lang = langOf(c, options.defaultLang);
    try {
      const found = await options.backend.lesson(c.req.param('id'));
      const { lesson } = found;
      return c.json({
        id: lesson.id,
        kind: lesson.kind,
        minutes: lesson.minutes,
        title: lesson.title[lang],
        lang,
        html: markdownHtml(lessonMarkdown(lesson, lang, { footer: false })),
        steps: lesson.steps.map((step) => ({ vm: step.vm, ssh: `klab ssh ${step.vm}` })),
        hints: found.hints.map((hint) => markdownHtml(hint[lang])),
        hintsTotal: found.hintsTotal,
      });
    } catch (error) {
      return c.json({ error: (error as Error).message }, 404);
    }
  });

  app.post('/api/actions', async (c) => {
    const action = parseAction(await c.req.json().catch(() => undefined));
    if (!action) return c.json({ error: 'not an action klab ui knows' }, 400);
    if (running) {
      return c.json(
        {
          error: `another action is running: ${running.record.action.kind}`,
          running: running.record.id,
        },
        409,
      );
    }
    const record: ActionRecord = {
      id: `a${Date.now().toString(36)}${randomBytes(3).toString('hex')}`,
      action,
      startedAt: new Date().toISOString(),
      events: [],
    };
    actions.set(record.id, record);
    for (const old of [...actions.keys()].slice(0, -20)) actions.delete(old);
    const log = options.actionLog?.(action);
    const sink: EventSink = {
      emit(event) {
        log?.sink.emit(event);
        const shown = pageEvent(event);
        if (!shown) return;
        if (record.events.length < 1000) record.events.push(shown);
        broadcast('event', { id: record.id, event: shown });
      },
    };
    broadcast('started', { id: record.id, action });
    const done = options.backend
      .run(action, sink)
      .catch(
        (error: unknown): UiActionResult => ({
          ok: false,
          code: 'KLAB_INTERNAL',
          message: (error as Error).message,
        }),
      )
      .then((result) => {
        record.result = result;
        running = undefined;
        log?.close(result);
        broadcast('done', { id: record.id, action, result });
      });
    running = { record, done };
    return c.json({ id: record.id }, 202);
  });

  app.get('/api/actions/:id', (c) => {
    const record = actions.get(c.req.param('id'));
    if (!record) return c.json({ error: 'no such action' }, 404);
    return c.json(record);
  });

  app.get('/api/events', (c) =>
    streamSSE(c, async (stream) => {
      const queue: { event: string; data: unknown }[] = [];
      let wake: (() => void) | undefined;
      const listener = (event: string, data: unknown) => {
        queue.push({ event, data });
        wake?.();
      };
      let closed = false;
      listeners.add(listener);
      stream.onAbort(() => {
        closed = true;
        listeners.delete(listener);
        wake?.();
      });
      await stream.writeSSE({
        event: 'hello',
        data: JSON.stringify({ running: running?.record.id ?? null }),
      });
      while (!closed) {
        if (queue.length === 0) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, 15_000).unref();
          });
          wake = undefined;
        }
        const next = queue.shift();
        if (closed) break;
        await stream.writeSSE(
          next
            ? { event: next.event, data: JSON.stringify(next.data) }
            : { event: 'ping', data: '' },
        );
      }
      listeners.delete(listener);
    }),
  );

  return {
    app,
    idle: async () => {
      await running?.done;
    },
  };
}
