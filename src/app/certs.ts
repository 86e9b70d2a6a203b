/** klab certs: the lab's own PKI on the host: generate or renew, list, check. */
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { certFiles } from '../../provision/certs/index.js';
import { putFiles } from '../../provision/lib/guest.js';
import {
  controlPlaneHealthy,
  etcdHealthy,
  unitStates,
  waitProbe,
} from '../../provision/lib/probes.js';
import { normalSerial, type ServedCertificate, servedCertificate } from '../adapters/tls.js';
import { KlabError } from '../model/errors.js';
import { type EventSink, task } from '../model/events.js';
import { labPaths } from '../model/lab-paths.js';
import type { LabSpec } from '../model/spec.js';
import { loadSpec } from '../model/spec-file.js';
import { loadState } from '../model/state.js';
import { etcdMembers, firstMaster, nodes } from '../model/topology.js';
import { type CertFinding, checkPki } from '../pki/check.js';
import { generatePki, pkiFiles } from '../pki/generate.js';
import { inspectCertificate } from '../pki/inspect.js';
import { planPki } from '../pki/plan.js';
import { type LabRequest, openLab, stepContext, withHosts } from './lab.js';

export interface PkiTarget {
  spec: LabSpec;
  /** Where the PKI lives: <lab>/.klab/pki unless given. */
  dir: string;
}

/** The spec with the stack the lab really runs (after a fallback): it decides file formats. */
export async function openPki(labDir: string, pkiDir?: string): Promise<PkiTarget> {
  const paths = labPaths(labDir);
  const loaded = await loadSpec(paths.dir);
  const state = await loadState(paths.stateFile);
  return {
    spec: { ...loaded, stack: state.stack ?? loaded.stack },
    dir: pkiDir ? path.resolve(pkiDir) : paths.pkiDir,
  };
}

/** Generate what is missing or out of date; renew: re-issue NAME, "ca" or "all". */
export async function generateCerts(target: PkiTarget, sink: EventSink, renew: string[] = []) {
  const known = new Set([
    'all',
    'ca',
    'etcd-ca',
    'front-proxy-ca',
    'sa',
    ...planPki(target.spec).certs.map((c) => c.name),
  ]);
  for (const name of renew) {
    if (!known.has(name)) {
      throw new KlabError('KLAB_USAGE', `there is no certificate "${name}"`, {
        hint: 'See the names with "klab certs list".',
      });
    }
  }
  return task(
    sink,
    `Generate the lab PKI in ${target.dir}`,
    () => generatePki(target.spec, { dir: target.dir, renew }),
    (r) => `${r.issued.length} issued, ${r.reused.length} reused`,
  );
}

export interface CertItem {
  name: string;
  file: string;
  state: 'ok' | 'missing' | 'corrupt';
  subject?: string;
  issuer?: string;
  sans?: string[];
  isCa?: boolean;
  usages?: string[];
  notAfter?: string;
}

/** Every CA and certificate the plan names, as it is on disk. */
export async function listCerts(target: PkiTarget): Promise<CertItem[]> {
  const plan = planPki(target.spec);
  const items: CertItem[] = [];
  for (const name of [...plan.cas.map((c) => c.name), ...plan.certs.map((c) => c.name)]) {
    const file = pkiFiles(target.dir, name).crt;
    const pem = await readFile(file, 'utf8').catch(() => undefined);
    if (!pem) {
      items.push({ name, file, state: 'missing' });
      continue;
    }
    try {
      const info = inspectCertificate(pem);
      items.push({
        name,
        file,
        state: 'ok',
        subject: info.subject,
        issuer: info.issuer,
        sans: [...info.dnsNames, ...info.ipAddresses],
        isCa: info.isCa,
        usages: info.usages,
        notAfter: info.notAfter.toISOString(),
      });
    } catch {
      items.push({ name, file, state: 'corrupt' });
    }
  }
  return items;
}

export async function checkCerts(target: PkiTarget): Promise<CertFinding[]> {
  return checkPki(target.spec, target.dir);
}

/**
 * The components that read a file klab copies to the VMs, by its name: after a renewal
 * exactly these are restarted (kubectl and etcdctl read theirs at every call; a kubelet
 * reads its bootstrap kubeconfig only while it has no certificate of its own).
 */
const READERS: readonly [RegExp, readonly string[]][] = [
  [
    /^(apiserver|apiserver-kubelet-client|etcd-client-apiserver|front-proxy-client)\.(crt|key)$/,
    ['kube-apiserver'],
  ],
  [/^(front-proxy-ca\.crt|encryption-config\.yaml)$/, ['kube-apiserver']],
  [/^sa\.(key|pub)$/, ['kube-apiserver', 'kube-controller-manager']],
  [/^ca\.key$/, ['kube-controller-manager']],
  [/^etcd-(server|peer)-[^/]+\.(crt|key)$/, ['etcd']],
  [/^etcd-client-flanneld\.(crt|key)$/, ['flanneld']],
  [/^kube-controller-manager\.kubeconfig$/, ['kube-controller-manager']],
  [/^kube-scheduler\.kubeconfig$/, ['kube-scheduler']],
  [/^kube-proxy\.kubeconfig$/, ['kube-proxy']],
  [/^kubelet-[^/]+\.(crt|key)$/, ['kubelet']],
];

/** The units to restart after these files changed on a VM, in the order to restart them. */
export function restartsFor(files: readonly string[]): string[] {
  const units = new Set<string>();
  for (const file of files) {
    const name = path.posix.basename(file);
    for (const [pattern, readers] of READERS) {
      if (pattern.test(name)) for (const unit of readers) units.add(unit);
    }
  }
  // Bottom up: etcd before its clients, the apiserver before what talks to it.
  return RESTART_ORDER.filter((unit) => units.has(unit));
}

const RESTART_ORDER = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'flanneld',
  'kube-proxy',
  'kubelet',
];

/** A renewal klab cannot put on a running lab by itself: a new CA (every trust changes). */
export function liveRenewRefusal(renew: readonly string[]): string | undefined {
  const cas = renew.filter((name) => ['ca', 'etcd-ca', 'front-proxy-ca', 'sa'].includes(name));
  return cas.length > 0
    ? `"${cas.join('", "')}" changes what every component trusts (or every service account token): docs/certificates.md, "Rotating a CA", shows the way that keeps the cluster`
    : undefined;
}

/**
 * klab certs generate / renew: the PKI on the host, then (renew, on a lab with VMs) the
 * renewed files on the VMs and their readers restarted. A new CA is refused on a lab with
 * VMs before anything changes, unless hostOnly.
 */
export async function renewCerts(
  request: LabRequest,
  target: PkiTarget,
  renew: string[],
  hostOnly: boolean,
): Promise<{ done: Awaited<ReturnType<typeof generateCerts>>; pushed?: PushedVm[] }> {
  const live = renew.length > 0 && !hostOnly && existsSync(labPaths(request.dir).vagrantfile);
  const refusal = live ? liveRenewRefusal(renew) : undefined;
  if (refusal) {
    throw new KlabError('KLAB_USAGE', `not renewed on the running lab: ${refusal}`, {
      hint: `Nothing was changed. "klab certs renew ${renew.join(' ')} --host-only" re-issues on the host only, for the steps in docs/certificates.md.`,
    });
  }
  const done = await generateCerts(target, request.sink, renew);
  const pushed = live ? await pushRenewed(request) : undefined;
  return { done, ...(pushed ? { pushed } : {}) };
}

export interface PushedVm {
  vm: string;
  /** Files on the VM that changed. */
  files: string[];
  /** Units restarted because they read one of those files. */
  restarted: string[];
}

/**
 * After a renewal: the changed files copied to the VMs that use them (what the certs step
 * would copy), the components that read them restarted, etcd and the control plane back
 * healthy. Undefined when the lab has no VMs yet (the next create copies them).
 */
export async function pushRenewed(request: LabRequest): Promise<PushedVm[] | undefined> {
  const lab = await openLab(request);
  if (!existsSync(lab.paths.vagrantfile)) return undefined;
  const states = await lab.vagrant.status();
  const stopped = lab.spec.vms.filter((vm) => states.get(vm.name) !== 'running');
  if (stopped.length === lab.spec.vms.length) return undefined;
  if (stopped.length > 0) {
    throw new KlabError(
      'KLAB_USAGE',
      `renewed on the host, but not copied to the VMs: ${stopped.map((vm) => vm.name).join(', ')} not running`,
      { hint: 'Start the lab with "klab up", then run the same "klab certs renew" again.' },
    );
  }
  return withHosts(lab, async (pool) => {
    const ctx = stepContext(lab, pool);
    const pushed: PushedVm[] = [];
    for (const vm of lab.spec.vms) {
      const host = ctx.host(vm.name);
      const files = await putFiles(host, await certFiles(ctx, vm));
      const loaded = await host.run(['systemctl', 'show', '-p', 'Id,LoadState', ...RESTART_ORDER], {
        allowFailure: true,
      });
      const present = unitStates(loaded.stdout)
        .filter((entry) => entry.loaded)
        .map((entry) => entry.unit);
      pushed.push({
        vm: vm.name,
        files,
        restarted: restartsFor(files).filter((unit) => present.includes(unit)),
      });
    }
    // etcd members one at a time (quorum kept), then everything else, bottom up.
    for (const entry of pushed.filter((p) => p.restarted.includes('etcd'))) {
      const vm = lab.spec.vms.find((candidate) => candidate.name === entry.vm);
      if (!vm) continue;
      await task(lab.sink, `Restart etcd on ${vm.name}`, async () => {
        await ctx.host(vm.name).run(['systemctl', 'restart', 'etcd'], { sudo: true });
        await waitProbe(
          ctx,
          vm,
          etcdHealthy(),
          `etcd on ${vm.name} healthy after the restart`,
          `klab ssh ${vm.name} -- sudo journalctl -u etcd -n 50`,
        );
      });
    }
    for (const entry of pushed) {
      const units = entry.restarted.filter((unit) => unit !== 'etcd');
      if (units.length === 0) continue;
      await task(lab.sink, `Restart ${units.join(', ')} on ${entry.vm}`, () =>
        ctx.host(entry.vm).run(
          // flanneld alone: docker (which requires it) and the pods keep running.
          ['systemctl', '--job-mode=ignore-dependencies', 'restart', ...units],
          { sudo: true },
        ),
      );
    }
    const master = firstMaster(lab.spec);
    if (pushed.some((entry) => entry.restarted.some((unit) => unit.startsWith('kube-')))) {
      await task(lab.sink, 'Wait for the control plane', () =>
        waitProbe(
          ctx,
          master,
          controlPlaneHealthy(),
          `the control plane on ${master.name} healthy after the restart`,
          `klab ssh ${master.name} -- sudo journalctl -u kube-apiserver -n 50`,
        ),
      );
    }
    return pushed;
  });
}

/** A TLS endpoint of the lab and the lab file whose certificate it should present. */
export interface ServedEndpoint {
  name: string;
  vm: string;
  host: string;
  port: number;
  /** The step that must be done on the VM before it serves. */
  step: string;
}

export function servedEndpoints(spec: LabSpec): ServedEndpoint[] {
  const master = firstMaster(spec);
  return [
    { name: 'apiserver', vm: master.name, host: master.ip, port: 6443, step: 'control-plane' },
    ...etcdMembers(spec).flatMap((vm) => [
      { name: `etcd-server-${vm.name}`, vm: vm.name, host: vm.ip, port: 2379, step: 'etcd' },
      { name: `etcd-peer-${vm.name}`, vm: vm.name, host: vm.ip, port: 2380, step: 'etcd' },
    ]),
    ...nodes(spec).map((vm) => ({
      name: `kubelet-${vm.name}`,
      vm: vm.name,
      host: vm.ip,
      port: 10250,
      step: 'kubelet',
    })),
  ];
}

/**
 * What the lab's servers really present, against the lab's files: the same certificate
 * (by serial) and not expired. A server still presenting an older certificate was not
 * restarted after a renewal, or its files on the VM differ from the lab's.
 */
export async function checkServed(
  request: LabRequest,
  target: PkiTarget,
  read: (host: string, port: number) => Promise<ServedCertificate> = servedCertificate,
  now: number = Date.now(),
): Promise<CertFinding[]> {
  const lab = await openLab(request);
  if (!existsSync(lab.paths.vagrantfile)) return [];
  const states = await lab.vagrant.status();
  const findings = await Promise.all(
    servedEndpoints(lab.spec)
      .filter((endpoint) => lab.state.steps[endpoint.vm]?.[endpoint.step])
      .filter((endpoint) => states.get(endpoint.vm) === 'running')
      .map(async (endpoint): Promise<CertFinding> => {
        const name = `${endpoint.name} (served on ${endpoint.host}:${endpoint.port})`;
        const pem = await readFile(pkiFiles(target.dir, endpoint.name).crt, 'utf8').catch(
          () => undefined,
        );
        let served: ServedCertificate;
        try {
          served = await read(endpoint.host, endpoint.port);
        } catch (error) {
          return {
            name,
            status: 'warn',
            detail: `not answering (${(error as Error).message}): klab verify tells why`,
          };
        }
        const file = pem ? normalSerial(new X509Certificate(pem).serialNumber) : undefined;
        if (served.validTo.getTime() <= now) {
          return {
            name,
            status: 'fail',
            detail: `serves a certificate that expired on ${served.validTo.toISOString()}`,
          };
        }
        if (served.serial !== file) {
          return {
            name,
            status: 'fail',
            detail: `serves serial ${served.serial}, the lab's file has ${file ?? 'none'}: renewed but not restarted, or the file on ${endpoint.vm} differs (klab certs renew ${endpoint.name} copies it and restarts the server)`,
          };
        }
        return {
          name,
          status: 'ok',
          detail: `serves the lab's certificate (serial ${served.serial})`,
        };
      }),
  );
  return findings;
}
