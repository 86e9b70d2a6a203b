/// <reference lib="dom" />
/**
 * klab ui's page (Preact, served by klab itself; no build step beyond tsc, no CDN): the lab
 * at a glance, the lessons with Check / Hint / Solve, and the live progress of the running
 * action, streamed from the server's events. Terminal work stays in the terminal: the
 * page shows the command to copy.
 */
import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';

import type { Language as Lang } from '../../../model/lesson.js';
import type {
  UiAction as Action,
  UiActionResult as ActionResult,
  UiLessonItem as LessonItem,
  UiOverview,
  UiVerifyReport as VerifyReport,
  UiVm as Vm,
  UiVmComponents as VmComponents,
} from '../../../model/web-ui.js';
import type { PageEvent } from '../server.js';

// The page's data is the server's (type-only imports: nothing of them reaches the browser).
type Overview = UiOverview & { running: { id: string; action: Action } | null };

interface LessonView {
  id: string;
  kind: string;
  minutes: number;
  title: string;
  lang: Lang;
  html: string;
  steps: { vm: string; ssh: string }[];
  hints: string[];
  hintsTotal: number;
}

const WORDS = {
  en: {
    lab: 'The lab',
    vms: 'Virtual machines',
    steps: 'Provisioning steps',
    checkpoints: 'Checkpoints and snapshots',
    noCheckpoints: 'No snapshots yet.',
    restore: 'Restore',
    save: 'Save snapshot',
    snapshotName: 'name',
    verify: 'Verify the cluster',
    verifyNever: 'Not verified from this page yet.',
    verifyPassed: 'Verify passed',
    verifyFailed: 'Verify failed',
    lessons: 'Lessons',
    pick: 'Pick a lesson on the left.',
    start: 'Start (reset the lab to its start)',
    startHere: 'Start here (no reset)',
    check: 'Check',
    hint: 'Hint',
    solve: 'Solve',
    hints: 'Hints',
    activity: 'What klab is doing',
    idle: 'Nothing is running.',
    copy: 'Copy',
    copied: 'Copied',
    refresh: 'Refresh',
    locked: 'Another klab command is changing the lab:',
    confirmStart:
      'Start this lesson? klab resets every VM to the lesson checkpoint (work done since is lost).',
    confirmSolve: 'Let klab do this lesson for you?',
    confirmRestore: 'Put every VM back to this snapshot? Work done since is lost.',
    steps_done: 'steps',
    tutorial: 'tutorial',
    breakfix: 'break/fix',
    passed: 'passed',
    solved: 'solved',
    current: 'started',
    notHere: 'not on this lab',
    age: 'age',
    size: 'saved state',
    afterStep: 'after step',
    unknown: 'unknown',
    running: 'running',
    terminal: 'In your terminal',
    asking: 'asking the VM…',
  },
  'zh-CN': {
    lab: '实验环境',
    vms: '虚拟机',
    steps: '部署步骤',
    checkpoints: '检查点与快照',
    noCheckpoints: '还没有快照。',
    restore: '恢复',
    save: '保存快照',
    snapshotName: '名称',
    verify: '验证集群',
    verifyNever: '尚未从本页面验证。',
    verifyPassed: '验证通过',
    verifyFailed: '验证失败',
    lessons: '课程',
    pick: '请在左侧选择一课。',
    start: '开始（把实验环境恢复到本课起点）',
    startHere: '从当前状态开始（不恢复）',
    check: '检查',
    hint: '提示',
    solve: '让 klab 完成',
    hints: '提示',
    activity: 'klab 正在做什么',
    idle: '当前没有正在运行的操作。',
    copy: '复制',
    copied: '已复制',
    refresh: '刷新',
    locked: '另一个 klab 命令正在修改实验环境：',
    confirmStart: '开始这一课？klab 会把每台虚拟机恢复到本课的检查点（之后做的改动会丢失）。',
    confirmSolve: '让 klab 替你完成这一课？',
    confirmRestore: '把每台虚拟机恢复到这个快照？之后做的改动会丢失。',
    steps_done: '步骤',
    tutorial: '教程',
    breakfix: '排障',
    passed: '已通过',
    solved: '已由 klab 完成',
    current: '进行中',
    notHere: '本实验环境不支持',
    age: '已保存',
    size: '内存状态',
    afterStep: '对应步骤',
    unknown: '未知',
    running: '运行中',
    terminal: '在终端中运行',
    asking: '正在查询虚拟机…',
  },
} as const;

type Words = { [K in keyof (typeof WORDS)['en']]: string };

// The token comes in the URL once; it is kept for this tab and taken out of the address bar.
const TOKEN_KEY = 'klab-ui-token';
const fromUrl = new URLSearchParams(location.search).get('token');
if (fromUrl) {
  sessionStorage.setItem(TOKEN_KEY, fromUrl);
  history.replaceState(null, '', location.pathname);
}
const token = sessionStorage.getItem(TOKEN_KEY) ?? '';

async function getJson<T>(url: string): Promise<T> {
  const answer = await fetch(url, { credentials: 'same-origin' });
  if (!answer.ok) throw new Error(`${url}: ${answer.status} ${await answer.text()}`);
  return (await answer.json()) as T;
}

/** Resolves each action's result: from the event stream, or by asking (stream reconnecting). */
const waiting = new Map<string, (result: ActionResult) => void>();

async function startAction(action: Action): Promise<string> {
  const answer = await fetch('/api/actions', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-Klab-Token': token },
    body: JSON.stringify(action),
  });
  const body = (await answer.json()) as { id?: string; error?: string };
  if (!answer.ok || !body.id) throw new Error(body.error ?? `HTTP ${answer.status}`);
  return body.id;
}

function resultOf(id: string): Promise<ActionResult> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: ActionResult) => {
      if (settled) return;
      settled = true;
      waiting.delete(id);
      clearInterval(poll);
      resolve(result);
    };
    waiting.set(id, finish);
    const poll = setInterval(() => {
      getJson<{ result?: ActionResult }>(`/api/actions/${id}`)
        .then((record) => record.result && finish(record.result))
        .catch(() => undefined);
    }, 3000);
  });
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

function age(createdMs: number, w: Words): string {
  if (!createdMs) return w.unknown;
  const s = Math.max(0, (Date.now() - createdMs) / 1000);
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

function CopyCommand({ command, w }: { command: string; w: Words }) {
  const [copied, setCopied] = useState(false);
  return (
    <div class="copy">
      <code data-testid="command">{command}</code>
      <button
        type="button"
        onClick={() => {
          navigator.clipboard
            ?.writeText(command)
            .then(() => setCopied(true))
            .catch(() => undefined);
        }}
      >
        {copied ? w.copied : w.copy}
      </button>
    </div>
  );
}

function VmCard({ vm, found, w }: { vm: Vm; found: VmComponents | undefined; w: Words }) {
  const running = vm.state === 'running';
  return (
    <div class="vm" data-testid={`vm-${vm.name}`}>
      <h3>
        {vm.name}
        <span class={`badge ${running ? 'ok' : 'warn'}`} data-testid="vm-state">
          {vm.state}
        </span>
      </h3>
      <div class="muted">
        {vm.roles.join(' · ')} · {vm.ip} · {w.steps_done} {vm.stepsDone}/{vm.stepsTotal}
      </div>
      <div class="chips">
        {running && !found && <span class="badge">{w.asking}</span>}
        {found?.components.map((c) => (
          <span
            key={c.unit}
            class={`badge ${c.active === 'active' ? 'ok' : 'bad'}`}
            title={c.active}
            data-testid="component"
          >
            {c.unit}
            {c.active === 'active' ? '' : ` (${c.active})`}
          </span>
        ))}
        {found?.error && <span class="badge warn">{found.error}</span>}
      </div>
      <CopyCommand command={vm.ssh} w={w} />
    </div>
  );
}

function VerifyResult({ report, w }: { report: VerifyReport | undefined; w: Words }) {
  if (!report) return <p class="muted">{w.verifyNever}</p>;
  return (
    <div data-testid="verify-result">
      <div class={`verdict ${report.passed ? 'pass' : 'fail'}`}>
        {report.passed ? w.verifyPassed : w.verifyFailed} ({report.seconds} s,{' '}
        {new Date(report.at).toLocaleTimeString()}){report.error ? `: ${report.error}` : ''}
      </div>
      <table>
        <tbody>
          {report.checks.map((check) => (
            <tr key={check.id} data-testid="verify-check">
              <td class={check.ok ? 'ok' : 'bad'}>{check.ok ? '✓' : '✗'}</td>
              <td>{check.name}</td>
              <td class="muted">{check.detail ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function LabPanel(props: {
  overview: Overview;
  components: Record<string, VmComponents> | undefined;
  w: Words;
  busy: boolean;
  act: (action: Action, confirmText?: string) => Promise<ActionResult | undefined>;
}) {
  const { overview, w, busy, act } = props;
  const [name, setName] = useState('');
  return (
    <div>
      <section data-testid="lab">
        <h2>
          {w.vms} ({overview.vms.length})
        </h2>
        {overview.lockedBy && (
          <p class="notice">
            {w.locked} {overview.lockedBy}
          </p>
        )}
        <div class="vms">
          {overview.vms.map((vm) => (
            <VmCard key={vm.name} vm={vm} found={props.components?.[vm.name]} w={w} />
          ))}
        </div>
      </section>
      <section>
        <h2>{w.steps}</h2>
        <div class="chips" data-testid="steps">
          {overview.steps.map((step) => {
            const all = step.doneOn.length === step.vms.length && step.vms.length > 0;
            const some = step.doneOn.length > 0;
            return (
              <span
                key={step.id}
                class={`badge ${all ? 'ok' : some ? 'warn' : ''}`}
                title={`${step.doneOn.length}/${step.vms.length}: ${step.vms.join(', ')}`}
              >
                {step.id}
              </span>
            );
          })}
        </div>
      </section>
      <section>
        <h2>{w.verify}</h2>
        <div class="actions">
          <button
            type="button"
            class="primary"
            disabled={busy}
            data-testid="verify"
            onClick={() => void act({ kind: 'verify' })}
          >
            {w.verify}
          </button>
        </div>
        <VerifyResult report={overview.verify} w={w} />
      </section>
      <section>
        <h2>{w.checkpoints}</h2>
        {overview.checkpoints.length === 0 ? (
          <p class="muted">{w.noCheckpoints}</p>
        ) : (
          <table data-testid="checkpoints">
            <thead>
              <tr>
                <th>{w.snapshotName}</th>
                <th>{w.afterStep}</th>
                <th>{w.size}</th>
                <th>{w.age}</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {overview.checkpoints.map((cp) => (
                <tr key={cp.name}>
                  <td>
                    <code>{cp.name}</code>
                  </td>
                  <td>{cp.afterStep ?? ''}</td>
                  <td>{gib(cp.stateBytes)}</td>
                  <td>{age(cp.createdAt, w)}</td>
                  <td>
                    <button
                      type="button"
                      disabled={busy}
                      onClick={() =>
                        void act({ kind: 'snapshot-restore', name: cp.name }, w.confirmRestore)
                      }
                    >
                      {w.restore}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <div class="actions">
          <input
            value={name}
            placeholder={w.snapshotName}
            aria-label={w.snapshotName}
            onInput={(event) => setName((event.currentTarget as HTMLInputElement).value)}
          />
          <button
            type="button"
            disabled={busy || !name}
            onClick={() => void act({ kind: 'snapshot-save', name })}
          >
            {w.save}
          </button>
        </div>
      </section>
    </div>
  );
}

function progressOf(item: LessonItem, w: Words): string {
  if (item.unsupported) return w.notHere;
  if (item.passed) return item.solved ? w.solved : w.passed;
  return item.current ? w.current : '';
}

function LessonsPanel(props: {
  lessons: LessonItem[];
  lang: Lang;
  w: Words;
  busy: boolean;
  selected: string | undefined;
  select: (id: string) => void;
  act: (action: Action, confirmText?: string) => Promise<ActionResult | undefined>;
  refreshToken: number;
}) {
  const { lessons, lang, w, busy, selected, select, act, refreshToken } = props;
  const [view, setView] = useState<LessonView | undefined>();
  const [verdict, setVerdict] = useState<ActionResult | undefined>();
  // Counts the verdicts shown, so a new one can be told from the last (tests wait on it).
  const [verdicts, setVerdicts] = useState(0);
  const [error, setError] = useState<string | undefined>();

  useEffect(() => {
    setVerdict(undefined);
  }, [selected]);
  useEffect(() => {
    if (!selected) return;
    getJson<LessonView>(`/api/lessons/${encodeURIComponent(selected)}?lang=${lang}`)
      .then((lesson) => {
        setView(lesson);
        setError(undefined);
      })
      .catch((e: Error) => setError(e.message));
  }, [selected, lang, refreshToken]);

  const run = async (action: Action, confirmText?: string) => {
    if (action.kind !== 'lesson-hint') setVerdict(undefined);
    const result = await act(action, confirmText);
    if (result && (action.kind !== 'lesson-hint' || !result.ok)) {
      setVerdict(result);
      setVerdicts((n) => n + 1);
    }
  };

  return (
    <div>
      <section>
        <h2>{w.lessons}</h2>
        <div class="lesson-list">
          <table class="lessons" data-testid="lessons">
            <tbody>
              {lessons.map((item) => (
                <tr
                  key={item.id}
                  class={item.id === selected ? 'selected' : ''}
                  data-testid={`lesson-${item.id}`}
                  onClick={() => select(item.id)}
                >
                  <td class="muted">{item.order}</td>
                  <td>
                    {item.title[lang]}
                    <div class="muted">
                      <code>{item.id}</code> · {item.kind === 'tutorial' ? w.tutorial : w.breakfix}{' '}
                      · {item.minutes} min
                    </div>
                  </td>
                  <td class={item.passed ? 'ok' : 'muted'}>{progressOf(item, w)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
      <section data-testid="lesson">
        {!selected && <p class="muted">{w.pick}</p>}
        {error && <p class="verdict fail">{error}</p>}
        {selected && view && view.id === selected && (
          <div>
            <div class="actions">
              <button
                type="button"
                disabled={busy}
                data-testid="lesson-start"
                onClick={() => void run({ kind: 'lesson-start', id: selected }, w.confirmStart)}
              >
                {w.start}
              </button>
              <button
                type="button"
                disabled={busy}
                onClick={() => void run({ kind: 'lesson-start', id: selected, here: true })}
              >
                {w.startHere}
              </button>
            </div>
            <div class="actions">
              <button
                type="button"
                class="primary"
                disabled={busy}
                data-testid="lesson-check"
                onClick={() => void run({ kind: 'lesson-check', id: selected })}
              >
                {w.check}
              </button>
              <button
                type="button"
                disabled={busy}
                data-testid="lesson-hint"
                onClick={() => void run({ kind: 'lesson-hint', id: selected })}
              >
                {w.hint} ({view.hints.length}/{view.hintsTotal})
              </button>
              <button
                type="button"
                disabled={busy}
                data-testid="lesson-solve"
                onClick={() => void run({ kind: 'lesson-solve', id: selected }, w.confirmSolve)}
              >
                {w.solve}
              </button>
            </div>
            {verdict && (
              <div
                class={`verdict ${verdict.ok ? 'pass' : 'fail'}`}
                data-testid="verdict"
                data-seq={verdicts}
              >
                <div data-testid="verdict-message">
                  {verdict.ok ? '✓ ' : '✗ '}
                  {verdict.message}
                </div>
                {verdict.details && (
                  <ul>
                    {verdict.details.map((line) => (
                      <li key={line}>{line}</li>
                    ))}
                  </ul>
                )}
                {verdict.hint && <p class="hint">{verdict.hint}</p>}
              </div>
            )}
            {view.hints.length > 0 && (
              <div>
                <h3>{w.hints}</h3>
                <ol class="hints" data-testid="hints">
                  {view.hints.map((hint) => (
                    <li key={hint} dangerouslySetInnerHTML={{ __html: hint }} />
                  ))}
                </ol>
              </div>
            )}
            <p class="muted">{w.terminal}:</p>
            {[...new Set(view.steps.map((step) => step.ssh))].map((command) => (
              <CopyCommand key={command} command={command} w={w} />
            ))}
            {/* The lesson's Markdown is klab's own (lessons/), rendered by marked on the server;
                the page's CSP runs no script that is not klab's. */}
            <article
              data-testid="lesson-text"
              lang={lang}
              dangerouslySetInnerHTML={{ __html: view.html }}
            />
          </div>
        )}
      </section>
    </div>
  );
}

function Activity({
  events,
  running,
  w,
}: {
  events: PageEvent[];
  running: string | undefined;
  w: Words;
}) {
  return (
    <section>
      <h2>
        {w.activity}
        {running ? ` (${w.running}: ${running})` : ''}
      </h2>
      <div class="activity" data-testid="activity">
        {events.length === 0 && <p class="muted">{w.idle}</p>}
        {events.map((event, index) => (
          <div
            key={index}
            class={event.ok === false || event.level === 'warn' ? 'bad' : event.ok ? 'ok' : ''}
          >
            {event.kind === 'task-end'
              ? event.ok
                ? '✓ '
                : '✗ '
              : event.kind === 'task-start'
                ? '… '
                : ''}
            {event.text}
            {event.ms !== undefined ? ` (${(event.ms / 1000).toFixed(1)} s)` : ''}
          </div>
        ))}
      </div>
    </section>
  );
}

function App({ defaultLang }: { defaultLang: Lang }) {
  const [lang, setLang] = useState<Lang>(
    (localStorage.getItem('klab-ui-lang') as Lang | null) ?? defaultLang,
  );
  const [overview, setOverview] = useState<Overview | undefined>();
  const [components, setComponents] = useState<Record<string, VmComponents> | undefined>();
  const [lessons, setLessons] = useState<LessonItem[]>([]);
  const [selected, setSelected] = useState<string | undefined>(
    location.hash ? decodeURIComponent(location.hash.slice(1)) : undefined,
  );
  const [running, setRunning] = useState<string | undefined>();
  const [events, setEvents] = useState<PageEvent[]>([]);
  const [problem, setProblem] = useState<string | undefined>();
  const [refreshToken, setRefreshToken] = useState(0);
  const w: Words = WORDS[lang];

  const refresh = useCallback(() => {
    getJson<Overview>('/api/overview')
      .then((answer) => {
        setOverview(answer);
        setRunning(answer.running?.action.kind);
        setProblem(undefined);
      })
      .catch((e: Error) => setProblem(e.message));
    // Asked over SSH, so apart: the page shows the lab before the VMs answer.
    getJson<Record<string, VmComponents>>('/api/components')
      .then(setComponents)
      .catch((e: Error) => setProblem(e.message));
    getJson<LessonItem[]>('/api/lessons')
      .then((items) => {
        setLessons(items);
        setSelected((current) => current ?? items.find((item) => item.current)?.id);
      })
      .catch((e: Error) => setProblem(e.message));
    setRefreshToken((n) => n + 1);
  }, []);

  useEffect(() => {
    refresh();
    const stream = new EventSource('/api/events');
    stream.addEventListener('started', (message) => {
      const data = JSON.parse((message as MessageEvent<string>).data) as { action: Action };
      setRunning(data.action.kind);
      setEvents([]);
    });
    stream.addEventListener('event', (message) => {
      const data = JSON.parse((message as MessageEvent<string>).data) as { event: PageEvent };
      setEvents((list) => [...list.slice(-300), data.event]);
    });
    stream.addEventListener('done', (message) => {
      const data = JSON.parse((message as MessageEvent<string>).data) as {
        id: string;
        result: ActionResult;
      };
      setRunning(undefined);
      waiting.get(data.id)?.(data.result);
      refresh();
    });
    return () => stream.close();
  }, [refresh]);

  useEffect(() => {
    localStorage.setItem('klab-ui-lang', lang);
    document.documentElement.lang = lang;
  }, [lang]);

  const select = (id: string) => {
    setSelected(id);
    history.replaceState(null, '', `#${encodeURIComponent(id)}`);
  };

  const act = async (action: Action, confirmText?: string) => {
    if (confirmText && !window.confirm(confirmText)) return undefined;
    try {
      const id = await startAction(action);
      setRunning(action.kind);
      const result = await resultOf(id);
      refresh();
      return result;
    } catch (e) {
      const result: ActionResult = { ok: false, code: 'KLAB_UI', message: (e as Error).message };
      setProblem(result.message);
      return result;
    }
  };

  return (
    <div>
      <header>
        <h1>klab · {overview?.name ?? ''}</h1>
        <span class="dir">{overview?.dir ?? ''}</span>
        <span class="spacer" />
        <button type="button" onClick={refresh}>
          {w.refresh}
        </button>
        <button
          type="button"
          aria-pressed={lang === 'en'}
          data-testid="lang-en"
          onClick={() => setLang('en')}
        >
          EN
        </button>
        <button
          type="button"
          aria-pressed={lang === 'zh-CN'}
          data-testid="lang-zh-CN"
          onClick={() => setLang('zh-CN')}
        >
          中文
        </button>
      </header>
      {problem && (
        <p class="notice" data-testid="problem">
          {problem}
        </p>
      )}
      <main>
        <div>
          {overview && (
            <LabPanel
              overview={overview}
              components={components}
              w={w}
              busy={running !== undefined}
              act={act}
            />
          )}
          <Activity events={events} running={running} w={w} />
        </div>
        <LessonsPanel
          lessons={lessons}
          lang={lang}
          w={w}
          busy={running !== undefined}
          selected={selected}
          select={select}
          act={act}
          refreshToken={refreshToken}
        />
      </main>
    </div>
  );
}

const root = document.getElementById('app');
if (root) {
  getJson<{ defaultLang: Lang }>('/api/config')
    .then((config) => {
      const browser: Lang = navigator.language.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en';
      root.textContent = '';
      render(<App defaultLang={config.defaultLang ?? browser} />, root);
    })
    .catch((e: Error) => {
      root.textContent = `klab ui: ${e.message}`;
    });
}
