import { describe, expect, it } from 'vitest';
import { loopbackHosts } from '../../../src/ui/web/serve.js';
import { createWebApp, TOKEN_COOKIE, TOKEN_HEADER } from '../../../src/ui/web/server.js';
import { type FakeUiBackend, fakeUiBackend } from '../../helpers/fake-ui-backend.js';

const TOKEN = 'test-token-0123456789abcdef';
const HOST = '127.0.0.1:7411';

async function setup(): Promise<{ backend: FakeUiBackend; web: ReturnType<typeof createWebApp> }> {
  const backend = await fakeUiBackend();
  const web = createWebApp({
    backend,
    token: TOKEN,
    hostAllowed: (host) => loopbackHosts(7411).has(host),
    defaultLang: 'en',
  });
  return { backend, web };
}

function request(
  web: ReturnType<typeof createWebApp>,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Response> {
  return Promise.resolve(
    web.app.request(path, { ...init, headers: { host: HOST, ...(init.headers ?? {}) } }),
  );
}

const withCookie = { cookie: `${TOKEN_COOKIE}=${TOKEN}` };
const postHeaders = {
  ...withCookie,
  [TOKEN_HEADER]: TOKEN,
  origin: `http://${HOST}`,
  'content-type': 'application/json',
};

async function waitForResult(web: ReturnType<typeof createWebApp>, id: string) {
  await web.idle();
  const record = (await (
    await request(web, `/api/actions/${id}`, { headers: withCookie })
  ).json()) as {
    result?: { ok: boolean; code: string; message: string };
    events: { code: string; text: string }[];
  };
  return record;
}

describe('klab ui web server', () => {
  it('refuses every request without the token (401), the page and the API alike', async () => {
    const { web } = await setup();
    for (const path of [
      '/',
      '/api/overview',
      '/api/lessons',
      '/assets/preact.mjs',
      '/api/events',
    ]) {
      expect((await request(web, path)).status, path).toBe(401);
    }
    expect((await request(web, '/api/overview?token=wrong-token-0123456789ab')).status).toBe(401);
    expect(
      (await request(web, '/api/overview', { headers: { cookie: `${TOKEN_COOKIE}=nope` } })).status,
    ).toBe(401);
  });

  it('serves the page for the token in the URL and keeps it in an HttpOnly SameSite=Strict cookie', async () => {
    const { web } = await setup();
    const page = await request(web, `/?token=${TOKEN}`);
    expect(page.status).toBe(200);
    const cookie = page.headers.get('set-cookie') ?? '';
    expect(cookie).toContain(`${TOKEN_COOKIE}=${TOKEN}`);
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'self' 'sha256-/);
    expect(page.headers.get('access-control-allow-origin')).toBeNull();
    expect(await page.text()).toContain('<script type="module" src="/assets/app.js">');
    // The cookie alone opens the API.
    expect((await request(web, '/api/overview', { headers: withCookie })).status).toBe(200);
  });

  it('refuses a Host header that does not name the loopback server (DNS rebinding)', async () => {
    const { web } = await setup();
    const answer = await web.app.request(`/api/overview?token=${TOKEN}`, {
      headers: { host: 'evil.example:7411' },
    });
    expect(answer.status).toBe(403);
  });

  it('serves the vendored Preact modules from klab itself, as JavaScript', async () => {
    const { web } = await setup();
    for (const name of ['preact.mjs', 'hooks.mjs', 'jsx-runtime.mjs']) {
      const answer = await request(web, `/assets/${name}`, { headers: withCookie });
      expect(answer.status, name).toBe(200);
      expect(answer.headers.get('content-type')).toContain('javascript');
    }
    expect((await request(web, '/assets/style.css', { headers: withCookie })).status).toBe(200);
    expect((await request(web, '/assets/../package.json', { headers: withCookie })).status).toBe(
      404,
    );
  });

  it('renders a lesson in each language from its Markdown', async () => {
    const { web } = await setup();
    const en = (await (
      await request(web, '/api/lessons/etcd?lang=en', { headers: withCookie })
    ).json()) as {
      title: string;
      html: string;
    };
    const zh = (await (
      await request(web, '/api/lessons/etcd?lang=zh-CN', { headers: withCookie })
    ).json()) as { title: string; html: string };
    expect(en.html).toContain('<h2');
    expect(en.html).toContain('klab ssh');
    expect(zh.title).not.toBe(en.title);
    expect(zh.html).toMatch(/[\u4e00-\u9fff]/);
    expect(
      (await request(web, '/api/lessons/no-such?lang=en', { headers: withCookie })).status,
    ).toBe(404);
  });

  it('runs an action posted with the token header from its own origin, and reports its events and result', async () => {
    const { web, backend } = await setup();
    backend.verdicts.set('etcd', {
      ok: false,
      code: 'KLAB_LESSON_CHECK_FAILED',
      message: 'lesson "etcd" is not done yet',
      details: ['node1: etcd is not running'],
    });
    const answer = await request(web, '/api/actions', {
      method: 'POST',
      headers: postHeaders,
      body: JSON.stringify({ kind: 'lesson-check', id: 'etcd' }),
    });
    expect(answer.status).toBe(202);
    const { id } = (await answer.json()) as { id: string };
    const record = await waitForResult(web, id);
    expect(record.result).toMatchObject({ ok: false, code: 'KLAB_LESSON_CHECK_FAILED' });
    expect(record.events.map((event) => event.code)).toEqual(['TASK_STARTED', 'TASK_DONE']);
    expect(backend.calls).toEqual([{ kind: 'lesson-check', id: 'etcd' }]);
  });

  it('refuses state changes without the token header, from another origin, by GET, or malformed', async () => {
    const { web, backend } = await setup();
    const body = JSON.stringify({ kind: 'verify' });
    const { [TOKEN_HEADER]: _dropped, ...noHeader } = postHeaders;
    expect(
      (await request(web, '/api/actions', { method: 'POST', headers: noHeader, body })).status,
    ).toBe(403);
    const crossOrigin = { ...postHeaders, origin: 'http://127.0.0.1:9999' };
    expect(
      (await request(web, '/api/actions', { method: 'POST', headers: crossOrigin, body })).status,
    ).toBe(403);
    expect(
      (await request(web, '/api/actions', { method: 'PUT', headers: postHeaders, body })).status,
    ).toBe(405);
    expect((await request(web, '/api/actions', { headers: withCookie })).status).toBe(404);
    for (const bad of [
      '{"kind":"rm-rf"}',
      '{"kind":"snapshot-save","name":"../x"}',
      '{"kind":"lesson-check"}',
      'not json',
    ]) {
      expect(
        (await request(web, '/api/actions', { method: 'POST', headers: postHeaders, body: bad }))
          .status,
        bad,
      ).toBe(400);
    }
    expect(backend.calls).toEqual([]);
  });

  it('runs one action at a time: a second one while the first runs is refused (409)', async () => {
    const { web, backend } = await setup();
    let release: () => void = () => {};
    backend.hold = new Promise((resolve) => {
      release = resolve;
    });
    const post = (kind: string) =>
      request(web, '/api/actions', {
        method: 'POST',
        headers: postHeaders,
        body: JSON.stringify({ kind }),
      });
    expect((await post('verify')).status).toBe(202);
    const second = await post('verify');
    expect(second.status).toBe(409);
    expect(((await second.json()) as { error: string }).error).toContain(
      'another action is running',
    );
    release();
    await web.idle();
    expect((await post('verify')).status).toBe(202);
    await web.idle();
    expect(backend.calls).toHaveLength(2);
  });
});
