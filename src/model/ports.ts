import type { ErrorCode } from './errors.js';

/**
 * Ports: what klab needs from the outside world, as interfaces. src/adapters implements
 * them (vagrant, virsh, HTTP, tar); unit tests pass fakes. The application never spawns a
 * process or opens a socket except through one of these (or RemoteHost, for the VMs).
 */

/** A finished process. */
export interface ProcessResult {
  command: readonly string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** The process could not be started at all (e.g. not installed). */
  notFound: boolean;
}

/** How to reach a VM over SSH (vagrant ssh-config). */
export interface SshConfig {
  host: string;
  hostName: string;
  user: string;
  port: number;
  identityFile: string;
}

export interface BoxEntry {
  name: string;
  provider: string;
  version: string;
}

/** The VM provider: boots, stops and removes the lab's machines (Vagrant + vagrant-libvirt). */
export interface Machines {
  /** VM name -> state (running, shutoff, not_created, ...). */
  status(): Promise<Map<string, string>>;
  /** How to reach a running VM; `fresh`: ask the provider, not a remembered answer. */
  sshConfig(vm: string, request?: { fresh?: boolean }): Promise<SshConfig>;
  up(vms: readonly string[], parallel: boolean, timeoutMs: number): Promise<void>;
  halt(vms?: readonly string[]): Promise<void>;
  /** Destroy these VMs (all of the lab's when none are named). */
  destroy(vms?: readonly string[]): Promise<void>;
  boxList(): Promise<BoxEntry[]>;
  /** Add a box from a file or a registry name; the failure is returned, not thrown. */
  boxAdd(name: string, source: string, timeoutMs: number): Promise<ProcessResult>;
}

/** The hypervisor under the VMs (libvirt): domains, snapshots, leftovers, guest clocks. */
export interface Virt {
  reachable(): Promise<{ ok: boolean; detail: string }>;
  domains(): Promise<string[]>;
  /** running, paused, shut off, ...; undefined when there is no such domain. */
  domainState(domain: string): Promise<string | undefined>;
  networks(): Promise<string[]>;
  networkBridge(network: string): Promise<string | undefined>;
  volumes(pool?: string): Promise<string[]>;
  snapshots(domain: string): Promise<string[]>;
  createSnapshot(domain: string, name: string, description: string): Promise<void>;
  /** Revert and leave the domain paused (if the snapshot held a running machine). */
  revertSnapshot(domain: string, name: string): Promise<void>;
  deleteSnapshot(domain: string, name: string): Promise<void>;
  /** Snapshot name -> creation time (ms since the epoch), in one call for the domain. */
  snapshotCreationTimes(domain: string): Promise<Map<string, number>>;
  /** Bytes of saved machine state per snapshot; undefined when the disk cannot be read. */
  snapshotStateSizes(domain: string): Promise<Map<string, number> | undefined>;
  suspend(domain: string): Promise<void>;
  resume(domain: string): Promise<void>;
  /** Set the guest clock through the guest agent; false when there is no agent. */
  setGuestTimeNow(domain: string): Promise<boolean>;
  removeDomain(domain: string): Promise<void>;
  removeNetwork(network: string): Promise<void>;
  removeVolume(volume: string, pool?: string): Promise<void>;
}

export interface DownloadProgress {
  received: number;
  total: number | undefined;
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  url: string;
}

/** Downloads (artifacts, registry manifests and blobs): HTTP(S), proxies, resumable files. */
export interface Fetcher {
  /** A small GET, the whole body in memory; follows redirects. */
  get(url: string, headers?: Record<string, string>): Promise<HttpAnswer>;
  /** To a file; a partial file is resumed. Returns the bytes transferred by this call. */
  download(
    url: string,
    file: string,
    options?: { onProgress?: (p: DownloadProgress) => void; headers?: Record<string, string> },
  ): Promise<{ transferred: number; resumed: boolean }>;
}

/** What a failed tar is reported as: the error code and the words of the caller. */
export interface TarFailure {
  code: ErrorCode;
  what: string;
  hint?: string;
}

/** tar: packs and unpacks archives (offline bundles, image archives). */
export interface Archiver {
  /** Runs `tar ARGS`; on failure throws a KlabError with `failure`'s code and words. */
  tar(args: readonly string[], failure: TarFailure, timeoutMs?: number): Promise<void>;
  /** Whether tar can compress with zstd here (the zstd program is installed). */
  hasZstd(): Promise<boolean>;
}
