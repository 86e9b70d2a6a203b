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

describe('a lesson checked by checks of klab verify', () => {
  async function testAppLesson() {
    const lesson = (await loadLessons(spec)).find((entry) => entry.id === 'test-app');
    if (!lesson) throw new Error('no test-app lesson');
    return lesson;
  }

  it('answers at once, with each failing check, while nothing is deployed', async () => {
    let now = 0;
    const handler: Handler = (argv) => {
      const line = argv.join(' ');
      if (line.includes('get pods')) return { stdout: '{"items":[]}' };
      if (line.includes('get service')) {
        return {
          exitCode: 1,
          stderr: 'Error from server (NotFound): namespaces "klab-verify" not found',
        };
      }
      return undefined;
    };
    const ctx = testStepContext(
      spec,
      { master: new FakeHost('master', handler), node1: new FakeHost('node1', handler) },
      {
        clock: {
          now: () => now,
          sleep: async (ms) => {
            now += ms;
          },
        },
      },
    );
    const result = await runLessonCheck(ctx, await testAppLesson());
    expect(result.passed).toBe(false);
    expect(result.problems).toHaveLength(2);
    expect(result.problems[0]).toContain(
      'test app by pod IP from every VM: no running test-app pod',
    );
    expect(result.problems[1]).toMatch(/^test app by ClusterIP from every VM: /);
    expect(now).toBeLessThan(5000);
  });

  it('passes when every pod answers by its IP and the ClusterIP answers, from every VM', async () => {
    const pods = {
      items: [
        {
          metadata: { name: 'php-apache-1' },
          status: { podIP: '172.30.9.2', phase: 'Running' },
          spec: { nodeName: 'node1' },
        },
      ],
    };
    const handler: Handler = (argv) => {
      const line = argv.join(' ');
      if (line.includes('get pods')) return { stdout: JSON.stringify(pods) };
      if (line.includes('jsonpath={.spec.clusterIP}')) return { stdout: '10.254.7.7' };
      if (line.includes('get endpoints')) {
        return { stdout: JSON.stringify({ subsets: [{ addresses: [{ ip: '172.30.9.2' }] }] }) };
      }
      if (argv[0] === 'curl') return { stdout: 'klab test app\nserved by: php-apache-1\n\n200' };
      return undefined;
    };
    const ctx = testStepContext(spec, {
      master: new FakeHost('master', handler),
      node1: new FakeHost('node1', handler),
    });
    expect(await runLessonCheck(ctx, await testAppLesson())).toEqual({
      passed: true,
      problems: [],
    });
  });
});
