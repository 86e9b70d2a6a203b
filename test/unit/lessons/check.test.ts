/** A tutorial lesson's check looks at the step's result, never at how the files were written. */
import { describe, expect, it } from 'vitest';
import { loadLessons } from '../../../src/lessons/catalog.js';
import { runLessonCheck } from '../../../src/lessons/check.js';
import { FakeHost, type Handler } from '../../helpers/fake-host.js';
import { twoVmSpec } from '../../helpers/specs.js';
import { testStepContext } from '../../helpers/step-context.js';

const spec = twoVmSpec();

async function etcdLesson() {
  const lesson = (await loadLessons(spec)).find((entry) => entry.id === 'etcd');
  if (!lesson) throw new Error('no etcd lesson');
  return lesson;
}

/** The master (the only etcd member of a 2-VM lab) with etcd in a given state. */
function master(active: boolean, healthy: boolean): FakeHost {
  const handler: Handler = (argv) => {
    if (argv[0] === 'systemctl')
      return { stdout: active ? 'active' : 'inactive', exitCode: active ? 0 : 3 };
    if (argv.includes('endpoint')) {
      return healthy
        ? { stdout: 'https://10.77.0.10:2379 is healthy' }
        : { exitCode: 1, stderr: 'context deadline exceeded' };
    }
    return undefined;
  };
  const host = new FakeHost('master', handler);
  // The learner's own unit: nothing like what klab would render.
  host.files.set(
    '/etc/systemd/system/etcd.service',
    '[Service]\nExecStart=/usr/bin/etcd --name=master\n',
  );
  return host;
}

describe('a tutorial lesson check', () => {
  it('fails, naming the VM, while etcd is not running', async () => {
    const ctx = testStepContext(spec, { master: master(false, false) });
    expect(await runLessonCheck(ctx, await etcdLesson())).toEqual({
      passed: false,
      problems: ['master: etcd is not running'],
    });
  });

  it('fails while etcd runs but is not healthy', async () => {
    const ctx = testStepContext(spec, { master: master(true, false) });
    const result = await runLessonCheck(ctx, await etcdLesson());
    expect(result.passed).toBe(false);
    expect(result.problems[0]).toContain('etcd is not healthy: context deadline exceeded');
  });

  it("passes on a healthy etcd whose unit file the learner wrote differently from klab's", async () => {
    const ctx = testStepContext(spec, { master: master(true, true) });
    expect(await runLessonCheck(ctx, await etcdLesson())).toEqual({ passed: true, problems: [] });
  });
});
