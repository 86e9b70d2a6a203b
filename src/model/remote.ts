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

export interface RemoteHost {
  /** The lab VM's name (master, node1, ...). */
  readonly name: string;
  run(argv: readonly string[], options?: RemoteRunOptions): Promise<RemoteResult>;
  writeFile(path: string, content: string | Buffer, options?: RemoteFileOptions): Promise<void>;
  readFile(path: string, options?: { sudo?: boolean }): Promise<string>;
  /** Copy a (large, binary) file from the VM to a local path, streamed. */
  downloadFile(path: string, localPath: string): Promise<void>;
  /** Copy a (large) local file, streamed; root-owned destinations need sudo. */
  uploadFile(localPath: string, path: string, options?: RemoteFileOptions): Promise<void>;
  close(): Promise<void>;
}
