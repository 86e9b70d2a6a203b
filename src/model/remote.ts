/** What steps see of a VM: run argv, move files. Implemented by adapters/ssh.ts and by test fakes. */
export interface RemoteResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RemoteRunOptions {
  sudo?: boolean;
  env?: Record<string, string>;
  stdin?: string;
  /** A local file streamed to the command's standard input (e.g. docker load, tar -x). */
  stdinFile?: string;
  /** Return a non-zero exit instead of throwing KLAB_STEP_FAILED. */
  allowFailure?: boolean;
  timeoutMs?: number;
  /** Keep the output out of the run's log (file contents, keys, raw etcd values). */
  quiet?: boolean;
}

export interface RemoteFileOptions {
  /** Octal permission bits, e.g. 0o644. */
  mode?: number;
  /** Write as root (via a temporary upload and sudo cp). */
  sudo?: boolean;
}

/** One file of a batch written as root: where, what, its mode and owner (root:root if none). */
export interface RootFile {
  path: string;
  content: string | Buffer;
  /** Octal permission bits, e.g. 0o644. */
  mode: number;
  /** user:group, e.g. etcd:etcd. */
  owner?: string;
}

export interface RemoteHost {
  /** The lab VM's name (master, node1, ...). */
  readonly name: string;
  run(argv: readonly string[], options?: RemoteRunOptions): Promise<RemoteResult>;
  writeFile(path: string, content: string | Buffer, options?: RemoteFileOptions): Promise<void>;
  /**
   * Several root-owned files at once: each uploaded, then one sudo command for all of them
   * (directories, copy, mode, owner). Under software emulation each command a VM starts
   * costs a fraction of a second, a sudo more; one file at a time was five of them.
   */
  writeFilesAsRoot(files: readonly RootFile[]): Promise<void>;
  readFile(path: string, options?: { sudo?: boolean }): Promise<string>;
  /** Copy a (large, binary) file from the VM to a local path, streamed. */
  downloadFile(path: string, localPath: string): Promise<void>;
  /** Copy a (large) local file, streamed; root-owned destinations need sudo. */
  uploadFile(localPath: string, path: string, options?: RemoteFileOptions): Promise<void>;
  close(): Promise<void>;
}
