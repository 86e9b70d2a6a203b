/** Files klab writes on the host: atomically (temp + rename), and only when they change. */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** A text file's content, or undefined when it does not exist. */
export async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Writes through a temp file and a rename: a reader never sees half a file. */
export async function writeAtomic(file: string, content: string, mode = 0o644): Promise<void> {
  // New directories are private when the file is (keys), else ordinary.
  await mkdir(path.dirname(file), { recursive: true, mode: mode & 0o044 ? 0o755 : 0o700 });
  const temp = `${file}.tmp-${process.pid}`;
  await writeFile(temp, content, { mode });
  await chmod(temp, mode);
  await rename(temp, file);
}

/** Writes only when the content differs (the mode is put right either way); true if written. */
export async function writeIfChanged(
  file: string,
  content: string,
  mode = 0o644,
): Promise<boolean> {
  if ((await readText(file)) === content) {
    await chmod(file, mode);
    return false;
  }
  await writeAtomic(file, content, mode);
  return true;
}
