/**
 * The guest-side files a module installs are templates in its own folder
 * (provision/etcd/etcd.service.ejs, ...): open one to see what klab writes on the VM.
 */
import { readFileSync } from 'node:fs';
import ejs from 'ejs';
import { packagePath } from '../../src/model/package-root.js';

const cache = new Map<string, string>();

/** Renders provision/<module>/<file> with `data`; the text is read once per run. */
export function renderTemplate(
  module: string,
  file: string,
  data: Record<string, unknown>,
): string {
  const key = `${module}/${file}`;
  let text = cache.get(key);
  if (text === undefined) {
    text = readFileSync(packagePath('provision', module, file), 'utf8');
    cache.set(key, text);
  }
  // Templates hold systemd units and shell: no HTML escaping, ever.
  return ejs.render(text, data, { escape: (value: unknown) => String(value), strict: false });
}
