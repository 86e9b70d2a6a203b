import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listLessons, nextHint, showLesson } from '../../../src/app/lessons.js';
import { KlabError } from '../../../src/model/errors.js';
import { nullSink } from '../../../src/model/events.js';

describe('lesson progress in the lab directory', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'klab-lesson-lab-'));
    await writeFile(path.join(dir, 'klab.yaml'), 'name: lessons\n');
    // A created lab is one with a rendered Vagrantfile.
    await writeFile(path.join(dir, 'Vagrantfile'), '# rendered\n');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const request = () => ({ dir, sink: nullSink });

  it('gives hints in order, one more each time, then the last one again', async () => {
    const shown = [];
    for (let i = 0; i < 5; i += 1) shown.push(await nextHint(request(), 'etcd'));
    const total = shown[0]?.total ?? 0;
    expect(total).toBeGreaterThanOrEqual(2);
    expect(shown.map((hint) => hint.number)).toEqual(
      [1, 2, 3, 4, 5].map((n) => Math.min(n, total)),
    );
    expect(shown[0]?.text.en).toContain('--initial-cluster');
    expect(shown[0]?.text['zh-CN']).toContain('--initial-cluster');
    const saved = JSON.parse(await readFile(path.join(dir, '.klab', 'lessons.json'), 'utf8'));
    expect(saved.lessons.etcd.hintsShown).toBe(total);
    const list = await listLessons(request());
    expect(list.find((item) => item.id === 'etcd')).toMatchObject({
      hintsShown: total,
      passed: false,
      current: false,
    });
  });

  it('without a started lesson, show says how to start one; an unknown id lists the real ones', async () => {
    const none = await showLesson(request()).catch((error: unknown) => error);
    expect((none as KlabError).code).toBe('KLAB_USAGE');
    expect((none as KlabError).hint).toContain('klab lesson start');
    const unknown = await showLesson(request(), 'etdc').catch((error: unknown) => error);
    expect((unknown as KlabError).code).toBe('KLAB_LESSON_UNKNOWN');
    expect((unknown as KlabError).hint).toContain('etcd');
  });

  it('a damaged progress file costs the progress, not the lab', async () => {
    await nextHint(request(), 'etcd');
    await writeFile(path.join(dir, '.klab', 'lessons.json'), '{ not json');
    const list = await listLessons(request());
    expect(list.every((item) => item.hintsShown === 0)).toBe(true);
  });

  it('a directory without a lab is refused', async () => {
    await rm(path.join(dir, 'Vagrantfile'));
    const error = await listLessons(request()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KlabError);
    expect((error as KlabError).code).toBe('KLAB_NO_LAB');
  });
});
