/**
 * What a lesson is: data (lessons/<id>/lesson.yaml, this schema) plus its text in each
 * language (lessons/<id>/en.md, lessons/<id>/zh-CN.md). The text's "## " sections are the
 * lesson's steps, in the order lesson.yaml lists them (each names the VM it runs on).
 * docs/lessons.md explains the format to lesson writers.
 */
import { z } from 'zod';

export const LANGUAGES = ['en', 'zh-CN'] as const;
export type Language = (typeof LANGUAGES)[number];

/** The learner's language from the locale (LC_ALL, LC_MESSAGES, LANG): zh* -> zh-CN. */
export function languageFromEnv(env: NodeJS.ProcessEnv): Language {
  const locale = env.LC_ALL || env.LC_MESSAGES || env.LANG || '';
  return locale.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en';
}

const localized = z.strictObject({ en: z.string().min(1), 'zh-CN': z.string().min(1) });

/**
 * A check or a solution. step:<id>: a provisioning step's result (check) or the step itself
 * (solution); fault:<id>: a fault repaired (check) or klab's repair (solution);
 * check:<id>[,<id>...]: checks of `klab verify` (a check only); deploy:<id>: an app klab
 * deploys as `klab verify` would (a solution only).
 */
const REFERENCE = /^(step|fault|deploy):[a-z0-9-]+$|^check:[a-z0-9-]+(,[a-z0-9-]+)*$|^reboot$/;
const reference = z
  .string()
  .regex(
    REFERENCE,
    'must be "step:<id>", "fault:<id>", "check:<id>[,<id>]", "deploy:<id>" or "reboot"',
  );

export const LessonSchema = z
  .strictObject({
    id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lowercase letters, digits and dashes'),
    /** Where it stands in `klab lesson list`; tutorial lessons follow klab create's steps. */
    order: z.number().int().positive(),
    kind: z.enum(['tutorial', 'break-fix']),
    minutes: z.number().int().positive().max(240),
    title: localized,
    start: z.strictObject({
      /** The checkpoint `klab lesson start` resets the lab to (after-<step>). */
      checkpoint: z.string().regex(/^after-[a-z0-9-]+$/, 'an automatic checkpoint: after-<step>'),
      /**
       * Apps klab deploys (as `klab verify` would) once the lab is at the checkpoint: what an
       * earlier lesson past the build left, so this one can start on its own.
       */
      deploy: z.array(z.string().min(1)).optional(),
      /** Break/fix: the fault injected once the lab is back at the checkpoint. */
      fault: z.string().optional(),
    }),
    steps: z.array(z.strictObject({ vm: z.string().min(1) })).min(1),
    check: reference,
    solution: reference,
    /** From a nudge to nearly the answer; `klab lesson hint` shows the next one each time. */
    hints: z.strictObject({
      en: z.array(z.string().min(1)).min(1),
      'zh-CN': z.array(z.string().min(1)).min(1),
    }),
  })
  .refine((lesson) => lesson.hints.en.length === lesson.hints['zh-CN'].length, {
    message: 'en and zh-CN must have the same number of hints',
    path: ['hints'],
  })
  .refine((lesson) => !lesson.check.startsWith('deploy:'), {
    message: 'deploy:<id> is a solution, not a check',
    path: ['check'],
  })
  .refine((lesson) => lesson.check !== 'reboot', {
    message: 'reboot is a solution, not a check',
    path: ['check'],
  })
  .refine((lesson) => !lesson.solution.startsWith('check:'), {
    message: 'check:<id> is a check, not a solution',
    path: ['solution'],
  })
  .refine((lesson) => lesson.kind === 'tutorial' || lesson.start.fault !== undefined, {
    message: 'a break-fix lesson names the fault it injects',
    path: ['start', 'fault'],
  });

export type LessonData = z.infer<typeof LessonSchema>;

export interface Lesson extends LessonData {
  /** The Markdown text per language. */
  text: Record<Language, string>;
}

export type ReferenceKind = 'step' | 'fault' | 'check' | 'deploy' | 'reboot';

/** A reference split: `step:etcd` -> { kind: 'step', id: 'etcd', ids: ['etcd'] }. */
export function parseReference(ref: string): { kind: ReferenceKind; id: string; ids: string[] } {
  const [kind = '', id = ''] = ref.split(':');
  const kinds: readonly string[] = ['step', 'fault', 'check', 'deploy', 'reboot'];
  return {
    kind: (kinds.includes(kind) ? kind : 'step') as ReferenceKind,
    id,
    ids: id.split(','),
  };
}

export interface LessonText {
  /** The text before the first "## " (title and introduction). */
  intro: string;
  /** One per "## " section: its heading and body. */
  sections: { heading: string; body: string }[];
}

/** Splits a lesson's Markdown into its introduction and its "## " step sections. */
export function splitLessonText(markdown: string): LessonText {
  const lines = markdown.replace(/\r\n/g, '\n').split('\n');
  const sections: { heading: string; body: string }[] = [];
  const intro: string[] = [];
  let current: { heading: string; lines: string[] } | undefined;
  let fenced = false;
  const flush = () => {
    if (current) sections.push({ heading: current.heading, body: current.lines.join('\n').trim() });
  };
  for (const line of lines) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = !fenced && /^## (.+)$/.exec(line);
    if (heading) {
      flush();
      current = { heading: heading[1]?.trim() ?? '', lines: [] };
    } else if (current) current.lines.push(line);
    else intro.push(line);
  }
  flush();
  return { intro: intro.join('\n').trim(), sections };
}

/** Progress of one lesson, kept in the lab directory (.klab/lessons.json). */
export interface LessonProgress {
  startedAt?: string;
  /** How many hints were shown since the last start. */
  hintsShown: number;
  checks: number;
  passedAt?: string;
  /** Passed because `klab lesson solve` did it, not the learner. */
  solved?: boolean;
}

export interface LessonProgressFile {
  current?: string;
  lessons: Record<string, LessonProgress>;
}

export function emptyProgress(): LessonProgress {
  return { hintsShown: 0, checks: 0 };
}
