/**
 * The one place where a shell command string is built. ssh2's exec takes a single
 * string, so argv arrays are quoted here and nowhere else.
 */
const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

export function quote(arg: string): string {
  if (arg.length > 0 && SAFE.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'"'"'`)}'`;
}

export interface CommandLineOptions {
  sudo?: boolean;
  /** Extra environment, set with env(1) so no shell syntax is needed. */
  env?: Record<string, string>;
}

export function commandLine(argv: readonly string[], options: CommandLineOptions = {}): string {
  if (argv.length === 0) throw new Error('commandLine: empty argv');
  const prefix: string[] = [];
  if (options.sudo) prefix.push('sudo', '-n', '--');
  const env = Object.entries(options.env ?? {});
  if (env.length > 0) {
    prefix.push('env');
    for (const [key, value] of env) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`bad environment name ${key}`);
      prefix.push(`${key}=${value}`);
    }
  }
  return [...prefix, ...argv].map(quote).join(' ');
}
