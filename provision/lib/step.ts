/**
 * A provisioning step: check (already done?) -> apply -> verify, on each of its VMs.
 * Steps are idempotent, so re-running `klab create` resumes where it stopped.
 */
import type { Clock, EventSink } from '../../src/model/events.js';
import type { RemoteHost, RemoteResult, RemoteRunOptions } from '../../src/model/remote.js';
import type { LabSpec, VmPlan } from '../../src/model/spec.js';
import type { ClusterTuning } from '../../src/model/tuning.js';
import type { ImageStore } from '../../src/stacks/image-store.js';
import type { ImageInstall, InstallProfile } from '../../src/stacks/install.js';

export interface StepContext {
  spec: LabSpec;
  sink: EventSink;
  clock: Clock;
  /** An open connection to any lab VM. */
  host(vm: string): RemoteHost;
  /** Read a file shipped under provision/ (guest-side scripts and templates). */
  provisionFile(...parts: string[]): Promise<string>;
  /** The stack the lab runs (after any fallback) and how it installs. */
  profile: InstallProfile;
  /** Timing that follows the hypervisor (etcd raft timeouts, node grace period). */
  tuning: ClusterTuning;
  /** The lab's PKI directory on the host (klab certs generate writes it). */
  pkiDir: string;
  /** The cached, verified file of one of the stack's artifacts. */
  artifactFile(id: string): string;
  /**
   * kubectl as cluster admin, run from the host with klab's own copy and the lab's admin
   * kubeconfig (the app layer provides it; unit tests and the containers tier leave it out,
   * and kubectl then runs on the first master).
   */
  adminKubectl?(args: readonly string[], options: RemoteRunOptions): Promise<RemoteResult>;
  /**
   * A Docker image store with these images, made on the host (once) for VMs whose Docker
   * is `guestDocker`; undefined when the host cannot make one (the reason goes to the log),
   * and the VM loads each image itself. Unit tests and the containers tier leave it out.
   */
  imageStore?(
    images: readonly ImageInstall[],
    guestDocker: string,
  ): Promise<ImageStore | undefined>;
}

export interface Step {
  /** Stable id: used for state, checkpoints (`after-<id>`) and lessons. */
  id: string;
  title: string;
  /** Which VMs it runs on; all VMs when omitted. */
  targets?(spec: LabSpec): VmPlan[];
  /**
   * Whether the step goes through its VMs one at a time (each applied and verified before the
   * next starts) instead of all at once: for joins that load a shared part (three kubelets
   * bootstrapping against one emulated API server).
   */
  oneAtATime?(ctx: StepContext): boolean;
  /**
   * Whether what the step makes on its VMs depends on every VM of the lab (/etc/hosts names
   * them all; the master holds every node's bootstrap token): when a VM joins or leaves
   * (`klab node add/remove`), such a step runs again on all its VMs, not only on the new one.
   */
  coversLab?: boolean;
  /** What is not yet as this step makes it (empty: done); probe steps have it. */
  problems?(ctx: StepContext, vm: VmPlan): Promise<string[]>;
  /**
   * What is wrong with the step's RESULT on the live VM, however it was reached: units
   * running, named probes answering; never whether a file matches klab's own rendering.
   * A lesson checks a step done by hand with this (service steps have it).
   */
  outcome?(ctx: StepContext, vm: VmPlan): Promise<string[]>;
  /** True when the VM already is in the state this step produces. */
  check(ctx: StepContext, vm: VmPlan): Promise<boolean>;
  /**
   * A passing check already is what verify would find (both look at the same problems):
   * then a step found done is not looked at a second time.
   */
  checkVerifies?: boolean;
  apply(ctx: StepContext, vm: VmPlan): Promise<void>;
  /** Throws a KlabError (KLAB_STEP_FAILED) when the result is not what it should be. */
  verify(ctx: StepContext, vm: VmPlan): Promise<void>;
  /**
   * Waits like verify, but for the RESULT alone (`outcome`: files are not compared): what the
   * wait after a reset uses, where every file is as it was saved, klab's or the learner's
   * own from a step done by hand in a lesson. Without it, verify.
   */
  settle?(ctx: StepContext, vm: VmPlan): Promise<void>;
  /**
   * Whether the step's health can change while the lab stands still: it runs something that
   * holds leases or heartbeats, talks to the other VMs or keeps a DHCP address (etcd, the
   * apiserver, kubelets, the default route). A reset brings every disk and every guest's
   * memory back byte for byte, but the clock jumps: only these steps are waited for after
   * it. The others (files, programs, images, loaded modules) are exactly as they were saved.
   */
  live?: boolean;
}
