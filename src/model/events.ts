/** Core code reports what it does as events; only src/ui/ decides how they look. */
export type KlabEvent =
  | { kind: 'task-start'; id: string; title: string }
  | { kind: 'task-update'; id: string; text: string }
  | {
      kind: 'task-end';
      id: string;
      title: string;
      ok: boolean;
      ms: number;
      detail?: string | undefined;
    }
  | { kind: 'notice'; level: 'info' | 'warn'; text: string }
  /** A line of output from a VM or a tool (shown with --verbose, always logged). */
  | { kind: 'output'; source: string; line: string }
  /** What the command answers (tables, values): printed to stdout. */
  | { kind: 'result'; text: string };

export interface EventSink {
  emit(event: KlabEvent): void;
}

export const nullSink: EventSink = { emit() {} };

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

let taskCounter = 0;

/** Run `fn` as a reported task: start, optional updates, then ok or failed with its duration. */
export async function task<T>(
  sink: EventSink,
  title: string,
  fn: (update: (text: string) => void) => Promise<T>,
  describe?: (value: T) => string | undefined,
): Promise<T> {
  taskCounter += 1;
  const id = `t${taskCounter}`;
  const started = Date.now();
  sink.emit({ kind: 'task-start', id, title });
  try {
    const value = await fn((text) => sink.emit({ kind: 'task-update', id, text }));
    sink.emit({
      kind: 'task-end',
      id,
      title,
      ok: true,
      ms: Date.now() - started,
      detail: describe?.(value),
    });
    return value;
  } catch (error) {
    sink.emit({ kind: 'task-end', id, title, ok: false, ms: Date.now() - started });
    throw error;
  }
}
