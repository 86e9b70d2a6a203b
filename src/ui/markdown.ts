/**
 * Lesson text for the terminal: Markdown rendered by marked + marked-terminal (colours on a
 * TTY, plain text in a pipe or CI), wrapped to the terminal's width.
 */
import { Marked } from 'marked';
import { markedTerminal } from 'marked-terminal';

export function renderMarkdown(markdown: string, width = process.stdout.columns || 88): string {
  const marked = new Marked(
    markedTerminal({ width: Math.min(Math.max(width, 40), 100), reflowText: true, tab: 2 }),
  );
  return String(marked.parse(markdown)).trimEnd();
}
