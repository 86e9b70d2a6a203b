/** A lesson's text as the learner reads it, in the terminal (klab lesson) and on the page (klab ui). */
import { type Language, type Lesson, splitLessonText } from '../model/lesson.js';

export const LESSON_WORDS = {
  en: {
    on: 'on',
    ssh: 'open a shell there.',
    done: 'When you are done: `klab lesson check` (stuck? `klab lesson hint`).',
    passed: 'Passed: the lab is as this lesson makes it.',
    solved: 'Solved by klab, and the check passes.',
    next: 'Next: `klab lesson next`.',
    hint: 'Hint',
  },
  'zh-CN': {
    on: '在',
    ssh: '登录这台虚拟机。',
    done: '完成后运行 `klab lesson check` 检查（卡住了？运行 `klab lesson hint` 看提示）。',
    passed: '检查通过：实验环境已经是本课要求的状态。',
    solved: 'klab 已替你完成本课，检查通过。',
    next: '下一课：`klab lesson next`。',
    hint: '提示',
  },
} as const;

/** The lesson as the learner reads it: the intro, then each step with the VM it runs on. */
export function lessonMarkdown(
  lesson: Lesson,
  lang: Language,
  options: { footer?: boolean } = {},
): string {
  const words = LESSON_WORDS[lang];
  const text = splitLessonText(lesson.text[lang]);
  const parts = [text.intro];
  text.sections.forEach((section, index) => {
    const vm = lesson.steps[index]?.vm ?? 'master';
    parts.push(
      `## ${index + 1}. ${section.heading} (${words.on} ${vm})`,
      `\`klab ssh ${vm}\`: ${words.ssh}`,
      section.body,
    );
  });
  if (options.footer !== false) parts.push('---', words.done);
  return parts.join('\n\n');
}
