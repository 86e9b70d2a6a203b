import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { provisioningSteps } from '../../../provision/index.js';
import { lessonProblems, lessonsDir, loadLessons } from '../../../src/lessons/catalog.js';
import { FAULTS } from '../../../src/lessons/faults.js';
import { KlabError } from '../../../src/model/errors.js';
import {
  LANGUAGES,
  LessonSchema,
  languageFromEnv,
  parseReference,
  splitLessonText,
} from '../../../src/model/lesson.js';
import { packagePath } from '../../../src/model/package-root.js';
import { lessonMarkdown } from '../../../src/ui/lesson-text.js';
import { defaultSpec, twoVmSpec } from '../../helpers/specs.js';

describe('the lessons shipped with klab', async () => {
  const spec = defaultSpec();
  const lessons = await loadLessons(spec);
  const stepIds = provisioningSteps(spec).map((step) => step.id);

  it('load without a problem, in order, with unique orders', () => {
    expect(lessons.length).toBeGreaterThanOrEqual(7);
    const orders = lessons.map((lesson) => lesson.order);
    expect(orders).toEqual([...orders].sort((a, b) => a - b));
    expect(new Set(orders).size).toBe(orders.length);
  });

  it.each(lessons.map((lesson) => [lesson.id, lesson] as const))(
    '%s: both languages complete, one section per step, every reference real',
    (_id, lesson) => {
      expect(lessonProblems(lesson, spec)).toEqual([]);
      expect(lessonProblems(lesson, twoVmSpec())).toEqual([]);
      for (const lang of LANGUAGES) {
        const text = splitLessonText(lesson.text[lang]);
        expect(text.sections).toHaveLength(lesson.steps.length);
        expect(lesson.title[lang].length).toBeGreaterThan(3);
        expect(lesson.hints[lang]).toHaveLength(lesson.hints.en.length);
      }
      // The Chinese text is Chinese, not the English left in place.
      expect(lesson.text['zh-CN']).toMatch(/[\u4e00-\u9fff]/);
      expect(lesson.text['zh-CN']).not.toBe(lesson.text.en);
      // It starts from a checkpoint klab takes, and VMs every lab has.
      expect(stepIds).toContain(lesson.start.checkpoint.replace('after-', ''));
      for (const step of lesson.steps) expect(['master', 'node1']).toContain(step.vm);
    },
  );

  it('tutorial lessons of a step start just before it and are checked and solved by it', () => {
    const ofSteps = lessons.filter(
      (entry) => entry.kind === 'tutorial' && parseReference(entry.check).kind === 'step',
    );
    expect(ofSteps.length).toBeGreaterThanOrEqual(7);
    for (const lesson of ofSteps) {
      const step = parseReference(lesson.check);
      expect(lesson.solution).toBe(lesson.check);
      const before = stepIds[stepIds.indexOf(step.id) - 1];
      expect(lesson.start.checkpoint).toBe(`after-${before}`);
    }
  });

  it('tutorial lessons past the build use the checks of klab verify, and what verify deploys', () => {
    const testApp = lessons.find((entry) => entry.id === 'test-app');
    expect(testApp?.start.checkpoint).toBe(`after-${stepIds.at(-1)}`);
    expect(parseReference(testApp?.check ?? '')).toMatchObject({
      kind: 'check',
      ids: ['pod-ip', 'cluster-ip'],
    });
    expect(testApp?.solution).toBe('deploy:test-app');
    // The ingress lesson can start on its own: klab deploys the test app it routes to.
    const ingress = lessons.find((entry) => entry.id === 'ingress');
    expect(ingress?.start).toEqual({ checkpoint: 'after-kubelet', deploy: ['test-app'] });
    expect(ingress?.check).toBe('check:ingress');
    expect(ingress?.solution).toBe('deploy:ingress');
  });

  it('break/fix lessons inject a fault on the provisioned cluster and check its repair', () => {
    const breakFix = lessons.filter((entry) => entry.kind === 'break-fix');
    expect(breakFix.length).toBeGreaterThanOrEqual(4);
    for (const lesson of breakFix) {
      expect(lesson.start.checkpoint).toBe(`after-${stepIds.at(-1)}`);
      expect(lesson.check).toBe(`fault:${lesson.start.fault}`);
    }
    // Every fault klab has is taught by some lesson.
    for (const fault of FAULTS) {
      expect(lessons.map((lesson) => lesson.start.fault)).toContain(fault.id);
    }
  });

  it('the certificates lesson starts with the apiserver pair taken away, and checks the files', () => {
    const certificates = lessons.find((entry) => entry.id === 'certificates');
    expect(certificates).toMatchObject({
      kind: 'tutorial',
      start: { checkpoint: 'after-certs', fault: 'apiserver-cert-removed' },
      check: 'fault:apiserver-cert-removed',
      solution: 'fault:apiserver-cert-removed',
    });
    // The reboot lesson: the finished cluster, rebooted; its solution reboots the lab.
    const reboot = lessons.find((entry) => entry.id === 'reboot');
    expect(reboot).toMatchObject({
      kind: 'tutorial',
      start: {
        checkpoint: `after-${stepIds.at(-1)}`,
        deploy: ['test-app'],
        fault: 'reboot-pending',
      },
      check: 'fault:reboot-pending',
      solution: 'reboot',
    });
    const { text: _text, ...data } = reboot ?? ({} as never);
    expect(LessonSchema.safeParse(data).success).toBe(true);
    expect(LessonSchema.safeParse({ ...data, check: 'reboot' }).success).toBe(false);
    // Just before the etcd lesson, which starts at the same checkpoint.
    const ids = lessons.map((entry) => entry.id);
    expect(ids.indexOf('certificates')).toBe(ids.indexOf('etcd') - 1);
    // The first lesson: the routes of every VM, right after klab's first step.
    expect(lessons[0]).toMatchObject({
      id: 'default-route',
      kind: 'tutorial',
      start: { checkpoint: `after-${stepIds[0]}`, fault: 'default-route-unset' },
      check: 'fault:default-route-unset',
      solution: 'fault:default-route-unset',
    });
  });

  it('docs/lessons.md lists every lesson, in both languages', async () => {
    for (const doc of ['docs/lessons.md', 'docs/zh-CN/lessons.md']) {
      const text = await readFile(packagePath(doc), 'utf8');
      const listed = [...text.matchAll(/^\| `([a-z0-9-]+)` \|/gm)].map((match) => match[1]);
      expect(listed, doc).toEqual(lessons.map((lesson) => lesson.id));
    }
  });

  it('renders each step with the VM to run it on, in both languages', () => {
    const etcd = lessons.find((lesson) => lesson.id === 'etcd');
    if (!etcd) throw new Error('no etcd lesson');
    const en = lessonMarkdown(etcd, 'en');
    expect(en).toContain('## 1. Look at what you have (on master)');
    expect(en).toContain('`klab ssh master`');
    expect(en).toContain('klab lesson check');
    const zh = lessonMarkdown(etcd, 'zh-CN');
    expect(zh).toContain('## 1. 先看看手里有什么 (在 master)');
  });
});

describe('lesson catalog problems', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function brokenCopy(edit: (dir: string) => Promise<void>): Promise<unknown> {
    dir = await mkdtemp(path.join(os.tmpdir(), 'klab-lessons-'));
    await cp(path.join(lessonsDir(), 'etcd'), path.join(dir, 'etcd'), { recursive: true });
    await edit(path.join(dir, 'etcd'));
    return loadLessons(defaultSpec(), dir).catch((error: unknown) => error);
  }

  it('a lesson naming a checkpoint, step and fault that do not exist is refused, naming each', async () => {
    const error = await brokenCopy(async (lesson) => {
      const file = path.join(lesson, 'lesson.yaml');
      const text = (await readFile(file, 'utf8'))
        .replace('checkpoint: after-certs', 'checkpoint: after-nothing\n  deploy: [no-such-app]')
        .replace('check: step:etcd', 'check: fault:no-such-fault')
        .replace('solution: step:etcd', 'solution: step:no-such-step');
      await writeFile(file, text);
    });
    expect(error).toBeInstanceOf(KlabError);
    expect((error as KlabError).code).toBe('KLAB_LESSON_INVALID');
    expect((error as KlabError).details).toEqual([
      'etcd: start.checkpoint: no step "nothing" takes a checkpoint',
      'etcd: start.deploy: klab deploys no "no-such-app"',
      'etcd: check: no fault "no-such-fault"',
      'etcd: solution: no step "no-such-step"',
    ]);
  });

  it('a verify check or an app that does not exist is refused; a check is no solution', async () => {
    const unknown = await brokenCopy(async (lesson) => {
      const file = path.join(lesson, 'lesson.yaml');
      const text = (await readFile(file, 'utf8'))
        .replace('check: step:etcd', 'check: check:pod-ip,no-such-check')
        .replace('solution: step:etcd', 'solution: deploy:no-such-app');
      await writeFile(file, text);
    });
    expect((unknown as KlabError).details).toEqual([
      'etcd: check: no check "no-such-check" in klab verify',
      'etcd: solution: klab deploys no "no-such-app"',
    ]);
    const swapped = await brokenCopy(async (lesson) => {
      const file = path.join(lesson, 'lesson.yaml');
      await writeFile(
        file,
        (await readFile(file, 'utf8')).replace('solution: step:etcd', 'solution: check:pod-ip'),
      );
    });
    expect((swapped as KlabError).message + (swapped as KlabError).details.join('\n')).toContain(
      'check:<id> is a check, not a solution',
    );
  });

  it('a missing language, a missing section or a schema break is refused', async () => {
    const noChinese = await brokenCopy((lesson) => rm(path.join(lesson, 'zh-CN.md')));
    expect((noChinese as KlabError).message).toContain('zh-CN.md is missing');
    const fewerSections = await brokenCopy(async (lesson) => {
      const file = path.join(lesson, 'en.md');
      await writeFile(file, (await readFile(file, 'utf8')).replace('## Look at what you have', ''));
    });
    expect((fewerSections as KlabError).details).toContain(
      'etcd: en.md: 2 "## " sections for 3 steps',
    );
    const badSchema = await brokenCopy(async (lesson) => {
      const file = path.join(lesson, 'lesson.yaml');
      await writeFile(file, (await readFile(file, 'utf8')).replace('kind: tutorial', 'kind: quiz'));
    });
    expect((badSchema as KlabError).details.join('\n')).toMatch(/^kind: /m);
  });
});

describe('lesson text and language', () => {
  it('splits the intro from the "## " sections, ignoring "## " inside code blocks', () => {
    const text = splitLessonText(
      '# T\n\nintro\n\n## One\nbody 1\n```sh\n## not a heading\n```\n## Two\nbody 2\n',
    );
    expect(text.intro).toBe('# T\n\nintro');
    expect(text.sections.map((section) => section.heading)).toEqual(['One', 'Two']);
    expect(text.sections[0]?.body).toContain('## not a heading');
  });

  it('takes the language from the locale', () => {
    expect(languageFromEnv({ LANG: 'zh_CN.UTF-8' })).toBe('zh-CN');
    expect(languageFromEnv({ LC_ALL: 'zh_TW.UTF-8', LANG: 'en_US.UTF-8' })).toBe('zh-CN');
    expect(languageFromEnv({ LANG: 'de_DE.UTF-8' })).toBe('en');
    expect(languageFromEnv({})).toBe('en');
  });
});
