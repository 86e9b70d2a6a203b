import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { KlabEvent } from '../../../src/model/events.js';
import { interrupt } from '../../../src/model/interrupt.js';
import { serveUi } from '../../../src/ui/web/serve.js';

afterEach(() => interrupt.reset());

async function until<T>(probe: () => T | undefined): Promise<T> {
  for (let i = 0; i < 200; i += 1) {
    const value = probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('never happened');
}

describe('klab ui (serveUi)', () => {
  it('prints a loopback URL with a token, serves the page only with it, and stops on Ctrl-C', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-ui-serve-'));
    await writeFile(path.join(dir, 'klab.yaml'), 'name: serve\n');
    const events: KlabEvent[] = [];
    const serving = serveUi({
      dir,
      sink: { emit: (event) => events.push(event) },
      port: 0,
      open: false,
      defaultLang: 'zh-CN',
    });
    const listening = await until(() =>
      events.find((event) => event.kind === 'result' && event.code === 'UI_LISTENING'),
    );
    const url = String((listening as { data?: { url?: string } }).data?.url);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{32}$/);
    const origin = new URL(url).origin;
    expect((await fetch(`${origin}/`)).status).toBe(401);
    const page = await fetch(url);
    expect(page.status).toBe(200);
    const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const config = (await (
      await fetch(`${origin}/api/config`, { headers: { cookie } })
    ).json()) as {
      defaultLang: string;
    };
    expect(config.defaultLang).toBe('zh-CN');
    interrupt.request('SIGINT');
    await serving;
    expect(events.some((event) => event.kind === 'notice' && event.code === 'UI_STOPPED')).toBe(
      true,
    );
    await expect(fetch(url)).rejects.toThrow();
  });

  it('refuses a directory without a lab before it listens', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-ui-nolab-'));
    await writeFile(path.join(dir, 'klab.yaml'), 'nodes: [ {name: 1} ]\n');
    const failed = await serveUi({
      dir,
      sink: { emit() {} },
      port: 0,
      open: false,
      defaultLang: 'en',
    }).catch((error: unknown) => error as { code?: string });
    expect(failed).toMatchObject({ code: 'KLAB_SPEC_INVALID' });
  });
});
