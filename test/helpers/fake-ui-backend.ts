/** A UiBackend for page and server tests: the real lesson catalog, a made-up lab, scripted verdicts. */
import { loadLessons } from '../../src/lessons/catalog.js';
import type { EventSink } from '../../src/model/events.js';
import type { Lesson } from '../../src/model/lesson.js';
import type {
  UiAction,
  UiActionResult,
  UiBackend,
  UiLessonItem,
  UiOverview,
} from '../../src/model/web-ui.js';
import { defaultSpec } from './specs.js';

export interface FakeUiBackend extends UiBackend {
  /** Every action run, in order. */
  calls: UiAction[];
  /** The verdict each lesson's check gives (default: passed). */
  verdicts: Map<string, UiActionResult>;
  /** Holds every action until released (to test "one at a time"). */
  hold?: Promise<void>;
}

export async function fakeUiBackend(): Promise<FakeUiBackend> {
  const spec = defaultSpec('demo');
  const lessons: Lesson[] = await loadLessons(spec);
  const hintsShown = new Map<string, number>();
  const passed = new Set<string>();
  const overview: UiOverview = {
    name: 'demo',
    dir: '/home/learner/lab',
    vms: spec.vms.map((vm) => ({
      name: vm.name,
      roles: [vm.role, ...(spec.etcdMembers.includes(vm.name) ? ['etcd'] : [])],
      ip: vm.ip,
      state: 'running',
      stepsDone: 15,
      stepsTotal: 15,
      ssh: `klab ssh ${vm.name}`,
    })),
    steps: [
      { id: 'etcd', vms: ['master', 'node1', 'node2'], doneOn: ['master', 'node1', 'node2'] },
    ],
    checkpoints: [
      {
        name: 'after-etcd',
        afterStep: 'etcd',
        stateBytes: 0.67 * 1024 ** 3,
        createdAt: 1_796_000_000,
      },
    ],
  };
  const backend: FakeUiBackend = {
    calls: [],
    verdicts: new Map(),
    async overview() {
      return overview;
    },
    async components() {
      return Object.fromEntries(
        spec.vms.map((vm) => [
          vm.name,
          {
            components:
              vm.role === 'master'
                ? [
                    { unit: 'etcd', active: 'active' },
                    { unit: 'kube-apiserver', active: 'active' },
                  ]
                : [
                    { unit: 'docker', active: 'active' },
                    { unit: 'kubelet', active: vm.name === 'node2' ? 'failed' : 'active' },
                  ],
          },
        ]),
      );
    },
    async lessons(): Promise<UiLessonItem[]> {
      return lessons.map((lesson) => ({
        id: lesson.id,
        order: lesson.order,
        kind: lesson.kind,
        minutes: lesson.minutes,
        title: lesson.title,
        current: false,
        passed: passed.has(lesson.id),
        solved: false,
        hintsShown: hintsShown.get(lesson.id) ?? 0,
      }));
    },
    async lesson(id) {
      const lesson = lessons.find((entry) => entry.id === id);
      if (!lesson) throw new Error(`no lesson "${id}"`);
      const shown = hintsShown.get(id) ?? 0;
      return {
        lesson,
        hints: lesson.hints.en.slice(0, shown).map((en, index) => ({
          en,
          'zh-CN': lesson.hints['zh-CN'][index] ?? '',
        })),
        hintsTotal: lesson.hints.en.length,
      };
    },
    async run(action: UiAction, sink: EventSink): Promise<UiActionResult> {
      backend.calls.push(action);
      sink.emit({
        kind: 'task-start',
        code: 'TASK_STARTED',
        id: 't1',
        title: `fake ${action.kind}`,
      });
      await backend.hold;
      sink.emit({
        kind: 'task-end',
        code: 'TASK_DONE',
        id: 't1',
        title: `fake ${action.kind}`,
        ok: true,
        ms: 5,
      });
      switch (action.kind) {
        case 'lesson-check': {
          const verdict = backend.verdicts.get(action.id) ?? {
            ok: true,
            code: 'LESSON_PASSED',
            message: 'Passed: done on the live lab.',
          };
          if (verdict.ok) passed.add(action.id);
          return verdict;
        }
        case 'lesson-hint': {
          const lesson = lessons.find((entry) => entry.id === action.id);
          const shown = Math.min(
            (hintsShown.get(action.id) ?? 0) + 1,
            lesson?.hints.en.length ?? 0,
          );
          hintsShown.set(action.id, shown);
          return { ok: true, code: 'LESSON_HINT', message: `Hint ${shown}` };
        }
        case 'verify': {
          const verify = {
            at: new Date().toISOString(),
            passed: true,
            seconds: 16,
            checks: [
              { id: 'etcd', name: 'etcd cluster healthy', ok: true, detail: '3 members' },
              { id: 'nodes', name: 'nodes Ready', ok: true, detail: '3 node(s)' },
            ],
          };
          overview.verify = verify;
          return {
            ok: true,
            code: 'VERIFY_PASSED',
            message: 'All 2 cluster checks passed (16 s).',
            verify,
          };
        }
        default:
          return { ok: true, code: 'TASK_DONE', message: `${action.kind} done` };
      }
    },
  };
  return backend;
}
