/** klab lesson list | start ID | show [ID] | check [ID] | hint [ID] | solve [ID] | next | reset */

import {
  checkLesson,
  type LessonListItem,
  listLessons,
  nextHint,
  restartLesson,
  showLesson,
  solveLesson,
  startLesson,
  startNextLesson,
} from '../app/lessons.js';
import { KlabError } from '../model/errors.js';
import { result } from '../model/events.js';
import { LANGUAGES, type Language, type Lesson, languageFromEnv } from '../model/lesson.js';
import { lessonMarkdown, LESSON_WORDS as WORDS } from '../ui/lesson-text.js';
import { renderMarkdown } from '../ui/markdown.js';
import { formatTable } from '../ui/table.js';
import type { KlabCommand } from './command.js';

const ACTIONS = ['list', 'start', 'show', 'check', 'hint', 'solve', 'next', 'reset'] as const;

function listRow(item: LessonListItem, lang: Language): string[] {
  const state = item.unsupported
    ? 'not on this lab'
    : item.passed
      ? item.solved
        ? 'solved'
        : 'passed'
      : item.current
        ? 'started'
        : '-';
  return [
    `${item.current ? '*' : ' '} ${item.id}`,
    item.kind,
    `${item.minutes} min`,
    state,
    item.title[lang],
  ];
}

export const lessonCommand: KlabCommand = {
  command: 'lesson <action> [id]',
  writesLab: (args) =>
    ['start', 'solve', 'next', 'reset'].includes(String(args.action)) ? 'lab' : false,
  describe:
    'Lessons on the live lab: list, start ID, show, check, hint, solve, next, reset (docs/lessons.md)',
  builder: (y) =>
    y
      .positional('action', { choices: ACTIONS })
      .positional('id', { type: 'string', describe: 'lesson id (default: the current lesson)' })
      .option('lang', {
        choices: LANGUAGES,
        describe: 'language of the lesson text (default: from the locale)',
      })
      .option('here', {
        type: 'boolean',
        default: false,
        describe:
          'start/next: go on with the lab as it is (no reset) when it already is where the lesson starts',
      }),
  logsInLab: 'always',
  async run(args, io) {
    const request = { dir: args.dir, sink: io.reporter };
    const lang: Language = (args.lang as Language | undefined) ?? languageFromEnv(process.env);
    const id = typeof args.id === 'string' ? args.id : undefined;
    const action = String(args.action);
    if (action === 'start' && !id) {
      throw new KlabError('KLAB_USAGE', 'klab lesson start needs a lesson id', {
        hint: 'See them with "klab lesson list"; for example: klab lesson start etcd',
      });
    }
    const words = WORDS[lang];
    const lessonData = (lesson: Lesson) => ({
      id: lesson.id,
      lessonKind: lesson.kind,
      title: lesson.title,
      minutes: lesson.minutes,
      start: lesson.start,
      steps: lesson.steps,
      text: lesson.text[lang],
      lang,
    });
    switch (action) {
      case 'list': {
        const items = await listLessons(request);
        const rows = items.map((item) => listRow(item, lang));
        const passed = items.filter((item) => item.passed).length;
        result(
          io.reporter,
          'LESSON_LIST',
          `${formatTable(['LESSON', 'KIND', 'TIME', 'PROGRESS', 'TITLE'], rows)}\n${passed}/${items.length} passed`,
          { kind: 'LessonList', items },
        );
        return 0;
      }
      case 'start':
      case 'next':
      case 'reset': {
        const here = { here: args.here === true };
        const started =
          action === 'start' && id
            ? await startLesson(request, id, here)
            : action === 'next'
              ? await startNextLesson(request, here)
              : await restartLesson(request);
        result(
          io.reporter,
          'LESSON_STARTED',
          renderMarkdown(lessonMarkdown(started.lesson, lang)),
          {
            kind: 'Lesson',
            ...lessonData(started.lesson),
            seconds: started.seconds,
            here: started.here,
          },
        );
        return 0;
      }
      case 'show': {
        const lesson = await showLesson(request, id);
        result(io.reporter, 'LESSON_TEXT', renderMarkdown(lessonMarkdown(lesson, lang)), {
          kind: 'Lesson',
          ...lessonData(lesson),
        });
        return 0;
      }
      case 'hint': {
        const hint = await nextHint(request, id);
        result(
          io.reporter,
          'LESSON_HINT',
          renderMarkdown(`**${words.hint} ${hint.number}/${hint.total}:** ${hint.text[lang]}`),
          {
            kind: 'LessonHint',
            lesson: hint.lesson.id,
            number: hint.number,
            total: hint.total,
            text: hint.text[lang],
          },
        );
        return 0;
      }
      case 'check':
      case 'solve': {
        const report =
          action === 'check' ? await checkLesson(request, id) : await solveLesson(request, id);
        result(
          io.reporter,
          action === 'check' ? 'LESSON_PASSED' : 'LESSON_SOLVED',
          `${action === 'check' ? words.passed : words.solved} ${words.next}`,
          { kind: 'LessonCheck', lesson: report.lesson.id, passed: true, problems: [] },
        );
        return 0;
      }
      default:
        throw new KlabError('KLAB_USAGE', `unknown lesson action "${action}"`);
    }
  },
};
