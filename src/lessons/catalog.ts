/**
 * The lesson catalog: every lessons/<id>/ folder read, validated (schema, both languages,
 * one text section per step, a checkpoint, check and solution that exist), in order.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { provisioningSteps } from '../../provision/index.js';
import { CHECKS, findDeployment } from '../checks/index.js';
import { KlabError } from '../model/errors.js';
import {
  LANGUAGES,
  type Language,
  type Lesson,
  LessonSchema,
  parseReference,
  splitLessonText,
} from '../model/lesson.js';
import { packagePath } from '../model/package-root.js';
import type { LabSpec } from '../model/spec.js';
import { formatIssues } from '../model/spec-file.js';
import { findFault } from './faults.js';

export function lessonsDir(): string {
  return packagePath('lessons');
}

/** Problems of one lesson against the provisioning steps and the faults klab has. */
export function lessonProblems(lesson: Lesson, spec: LabSpec): string[] {
  const problems: string[] = [];
  const steps = provisioningSteps(spec).map((step) => step.id);
  const checkpointStep = lesson.start.checkpoint.replace(/^after-/, '');
  if (!steps.includes(checkpointStep)) {
    problems.push(`start.checkpoint: no step "${checkpointStep}" takes a checkpoint`);
  }
  for (const id of (lesson.start.deploy ?? []).filter((id) => !findDeployment(id))) {
    problems.push(`start.deploy: klab deploys no "${id}"`);
  }
  if (lesson.start.fault && !findFault(lesson.start.fault)) {
    problems.push(`start.fault: no fault "${lesson.start.fault}"`);
  }
  for (const key of ['check', 'solution'] as const) {
    const ref = parseReference(lesson[key]);
    if (ref.kind === 'step' && !steps.includes(ref.id))
      problems.push(`${key}: no step "${ref.id}"`);
    if (ref.kind === 'fault' && !findFault(ref.id)) problems.push(`${key}: no fault "${ref.id}"`);
    if (ref.kind === 'check') {
      for (const id of ref.ids.filter((id) => !CHECKS.some((check) => check.id === id))) {
        problems.push(`${key}: no check "${id}" in klab verify`);
      }
    }
    if (ref.kind === 'deploy' && !findDeployment(ref.id)) {
      problems.push(`${key}: klab deploys no "${ref.id}"`);
    }
  }
  for (const language of LANGUAGES) {
    const text = splitLessonText(lesson.text[language]);
    if (!text.intro.startsWith('# ')) problems.push(`${language}.md: starts with "# <title>"`);
    if (text.sections.length !== lesson.steps.length) {
      problems.push(
        `${language}.md: ${text.sections.length} "## " sections for ${lesson.steps.length} steps`,
      );
    }
    const empty = text.sections.findIndex((section) => section.body.length === 0);
    if (empty >= 0) problems.push(`${language}.md: section ${empty + 1} has no text`);
  }
  return problems;
}

async function readLesson(dir: string): Promise<Lesson> {
  const id = path.basename(dir);
  const source = `lessons/${id}/lesson.yaml`;
  let document: unknown;
  try {
    document = YAML.parse(await readFile(path.join(dir, 'lesson.yaml'), 'utf8'));
  } catch (error) {
    throw new KlabError('KLAB_LESSON_INVALID', `${source} cannot be read`, {
      details: [(error as Error).message],
    });
  }
  const parsed = LessonSchema.safeParse(document);
  if (!parsed.success) {
    throw new KlabError('KLAB_LESSON_INVALID', `${source} is not a valid lesson`, {
      details: formatIssues(parsed.error.issues),
    });
  }
  if (parsed.data.id !== id) {
    throw new KlabError('KLAB_LESSON_INVALID', `${source}: id "${parsed.data.id}" is not "${id}"`);
  }
  const text = {} as Record<Language, string>;
  for (const language of LANGUAGES) {
    const file = path.join(dir, `${language}.md`);
    if (!existsSync(file)) {
      throw new KlabError('KLAB_LESSON_INVALID', `lessons/${id}/${language}.md is missing`);
    }
    text[language] = await readFile(file, 'utf8');
  }
  return { ...parsed.data, text };
}

/** Every lesson, in order; a broken one fails the whole catalog, naming what is wrong. */
export async function loadLessons(spec: LabSpec, dir = lessonsDir()): Promise<Lesson[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const lessons = await Promise.all(
    entries
      .filter((entry) => entry.isDirectory())
      .map((entry) => readLesson(path.join(dir, entry.name))),
  );
  const problems = lessons.flatMap((lesson) =>
    lessonProblems(lesson, spec).map((problem) => `${lesson.id}: ${problem}`),
  );
  const orders = new Map<number, string>();
  for (const lesson of lessons) {
    const other = orders.get(lesson.order);
    if (other) problems.push(`${lesson.id}: order ${lesson.order} is taken by ${other}`);
    orders.set(lesson.order, lesson.id);
  }
  if (problems.length > 0) {
    throw new KlabError(
      'KLAB_LESSON_INVALID',
      `the lesson catalog has ${problems.length} problems`,
      {
        details: problems,
      },
    );
  }
  return lessons.sort((a, b) => a.order - b.order);
}

export function findLesson(lessons: readonly Lesson[], id: string): Lesson {
  const lesson = lessons.find((entry) => entry.id === id);
  if (!lesson) {
    throw new KlabError('KLAB_LESSON_UNKNOWN', `there is no lesson "${id}"`, {
      hint: `See them all with "klab lesson list": ${lessons.map((entry) => entry.id).join(', ')}.`,
    });
  }
  return lesson;
}
