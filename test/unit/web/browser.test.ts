/**
 * klab ui's page in a real Chromium (Debian's chromium, driven by playwright-core; no
 * browser download), against a server started here with a fake lab backend.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ListeningServer, listenHttp } from '../../../src/adapters/http-server.js';
import { packagePath } from '../../../src/model/package-root.js';
import { loopbackHosts } from '../../../src/ui/web/serve.js';
import { createWebApp, TOKEN_HEADER } from '../../../src/ui/web/server.js';
import { launchChromium } from '../../helpers/browser.js';
import { type FakeUiBackend, fakeUiBackend } from '../../helpers/fake-ui-backend.js';

const TOKEN = 'browser-test-token-0123456789';

/** The page script as klab builds it (tsc, react-jsx for Preact), from the source under test. */
async function compilePage(): Promise<string> {
  const source = await readFile(packagePath('src', 'ui', 'web', 'page', 'app.tsx'), 'utf8');
  const output = ts.transpileModule(source, {
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      jsx: ts.JsxEmit.ReactJSX,
      jsxImportSource: 'preact',
    },
  }).outputText;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-ui-page-'));
  const file = path.join(dir, 'app.js');
  await writeFile(file, output);
  return file;
}

let browser: Browser;
let server: ListeningServer;
let evil: ListeningServer;
let backend: FakeUiBackend;
let base: string;

async function openPage(lang: 'en' | 'zh-CN' = 'en'): Promise<Page> {
  const context = await browser.newContext({ locale: lang });
  const page = await context.newPage();
  page.on('dialog', (dialog) => void dialog.accept());
  await page.goto(`${base}/?token=${TOKEN}`);
  await page.getByTestId('lab').waitFor();
  return page;
}

describe('klab ui in Chromium', () => {
  beforeAll(async () => {
    backend = await fakeUiBackend();
    let port = 0;
    const web = createWebApp({
      backend,
      token: TOKEN,
      hostAllowed: (host) => loopbackHosts(port).has(host),
      defaultLang: 'en',
      appScript: await compilePage(),
    });
    server = await listenHttp(web.app.fetch, '127.0.0.1', 0);
    port = server.port;
    base = `http://127.0.0.1:${port}`;
    // Another site on this machine: a page that tries to make klab ui act.
    evil = await listenHttp(
      () =>
        new Response(
          `<!doctype html><script>
            fetch('${base}/api/actions', { method: 'POST', mode: 'no-cors', credentials: 'include',
              headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ kind: 'verify' }) })
              .then(() => { document.title = 'sent'; }, () => { document.title = 'blocked'; });
            fetch('${base}/api/actions', { method: 'POST', credentials: 'include',
              headers: { 'Content-Type': 'application/json', '${TOKEN_HEADER}': 'guess' },
              body: JSON.stringify({ kind: 'verify' }) })
              .then(() => { document.body.dataset.second = 'sent'; }, () => { document.body.dataset.second = 'blocked'; });
          </script>`,
          { headers: { 'Content-Type': 'text/html' } },
        ),
      '127.0.0.1',
      0,
    );
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await evil?.close();
  });

  it('loads the page: every VM with its components, the steps and the checkpoints', async () => {
    const page = await openPage();
    for (const vm of ['master', 'node1', 'node2', 'node3']) {
      await expect.poll(() => page.getByTestId(`vm-${vm}`).count()).toBe(1);
    }
    const node2 = page.getByTestId('vm-node2');
    await expect
      .poll(() => node2.getByTestId('component').allTextContents())
      .toContain('kubelet (failed)');
    expect(await node2.getByTestId('command').textContent()).toBe('klab ssh node2');
    expect(await page.getByTestId('checkpoints').textContent()).toContain('after-etcd');
    // The token left the address bar once read.
    expect(page.url()).not.toContain('token=');
    await page.context().close();
  });

  it('lists the lessons and shows a lesson text in English and in Chinese', async () => {
    const page = await openPage();
    await page.getByTestId('lesson-etcd').click();
    const text = page.getByTestId('lesson-text');
    await text.waitFor();
    expect(await text.textContent()).toContain('etcd');
    expect(await text.locator('h2').count()).toBeGreaterThan(0);
    const english = await page.getByTestId('lesson-etcd').textContent();
    await page.getByTestId('lang-zh-CN').click();
    await expect.poll(async () => (await text.textContent()) ?? '').toMatch(/[\u4e00-\u9fff]{4}/);
    expect(await page.getByTestId('lesson-etcd').textContent()).not.toBe(english);
    expect(await page.getByTestId('lesson-start').textContent()).toContain('开始');
    await page.context().close();
  });

  it('Check shows pass, and fail with the reason, from the lab backend', async () => {
    backend.verdicts.set('flannel', {
      ok: false,
      code: 'KLAB_LESSON_CHECK_FAILED',
      message: 'lesson "flannel" is not done yet',
      details: ['node1: flanneld is not running (systemctl status flanneld)'],
      hint: 'Fix what is listed, then check again.',
    });
    const page = await openPage();
    await page.getByTestId('lesson-etcd').click();
    await page.getByTestId('lesson-check').click();
    const verdict = page.getByTestId('verdict');
    await expect.poll(async () => (await verdict.getAttribute('class')) ?? '').toContain('pass');
    expect(await verdict.textContent()).toContain('Passed');

    await page.getByTestId('lesson-flannel').click();
    await page.getByTestId('lesson-text').waitFor();
    await page.getByTestId('lesson-check').click();
    await expect.poll(async () => (await verdict.getAttribute('class')) ?? '').toContain('fail');
    expect(await verdict.textContent()).toContain('node1: flanneld is not running');
    expect(await verdict.textContent()).toContain('not done yet');
    // Repaired: Check again on the same lesson shows the new verdict, not the last one.
    const before = Number(await verdict.getAttribute('data-seq'));
    backend.verdicts.delete('flannel');
    await page.getByTestId('lesson-check').click();
    await expect.poll(async () => Number(await verdict.getAttribute('data-seq'))).toBe(before + 1);
    expect(await verdict.getAttribute('class')).toContain('pass');
    // The activity shows the action's events as they came.
    expect(await page.getByTestId('activity').textContent()).toContain('fake lesson-check');
    await page.context().close();
  });

  it('shows hints one at a time and the verify result', async () => {
    const page = await openPage();
    await page.getByTestId('lesson-etcd').click();
    await page.getByTestId('lesson-hint').click();
    await expect.poll(() => page.getByTestId('hints').locator('li').count()).toBe(1);
    await page.getByTestId('lesson-hint').click();
    await expect.poll(() => page.getByTestId('hints').locator('li').count()).toBe(2);
    await page.getByTestId('verify').click();
    await expect.poll(() => page.getByTestId('verify-check').count()).toBe(2);
    expect(await page.getByTestId('verify-result').textContent()).toContain('Verify passed');
    await page.context().close();
  });

  it('refuses requests without the token (401) and a POST from another origin', async () => {
    expect((await fetch(`${base}/`)).status).toBe(401);
    expect((await fetch(`${base}/api/lessons`)).status).toBe(401);
    const page = await openPage();
    const callsBefore = backend.calls.length;
    // The browser holds the cookie now; a page of another origin on this machine tries.
    await page.goto(`http://127.0.0.1:${evil.port}/`);
    await expect.poll(() => page.title()).not.toBe('');
    await expect.poll(() => page.evaluate(() => document.body.dataset.second ?? '')).not.toBe('');
    // The simple POST reached the server and was refused; the one with a header was stopped
    // by the browser (no CORS preflight answer).
    expect(await page.evaluate(() => document.body.dataset.second)).toBe('blocked');
    expect(backend.calls.length).toBe(callsBefore);
    const direct = await fetch(`${base}/api/actions`, {
      method: 'POST',
      headers: {
        cookie: `klab_ui_token=${TOKEN}`,
        [TOKEN_HEADER]: TOKEN,
        origin: `http://127.0.0.1:${evil.port}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ kind: 'verify' }),
    });
    expect(direct.status).toBe(403);
    expect(backend.calls.length).toBe(callsBefore);
    await page.context().close();
  });
});
