import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { commandLine, quote } from '../../../src/model/shell.js';

describe('quote / commandLine', () => {
  it('leaves safe words alone and single-quotes the rest', () => {
    expect(quote('eth0')).toBe('eth0');
    expect(quote('')).toBe("''");
    expect(quote("it's")).toBe(`'it'"'"'s'`);
    expect(commandLine(['ip', 'route'], { sudo: true })).toBe('sudo -n -- ip route');
    expect(commandLine(['etcdctl', 'get', '/'], { env: { ETCDCTL_API: '3' } })).toBe(
      'env ETCDCTL_API=3 etcdctl get /',
    );
  });

  it('round-trips hostile arguments through a real shell unchanged', () => {
    const args = [
      'a b',
      "quote'd",
      '$(rm -rf /)',
      '`x`',
      'semi;colon',
      'new\nline',
      '*',
      '~',
      '#c',
      '\\',
    ];
    const line = commandLine(['printf', '%s\\0', ...args]);
    const out = execFileSync('sh', ['-c', line], { encoding: 'utf8' });
    expect(out.split('\0').slice(0, -1)).toEqual(args);
  });

  it('refuses bad environment names', () => {
    expect(() => commandLine(['x'], { env: { 'A;B': '1' } })).toThrow(/bad environment name/);
  });
});
