/**
 * klab node add / remove: a worker VM joins the running lab through the same provisioner
 * modules as `klab create` (TLS bootstrapping for its kubelet), or leaves it without a trace
 * (Node, flannel lease, bootstrap token, snapshots, VM, /etc/hosts lines, klab.yaml entry).
 * Both are resumable: each part looks at what is there before it acts.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { deleteLease, flannelLeases } from '../../provision/flannel/index.js';
import { provisioningSteps } from '../../provision/index.js';
import { kubectl } from '../../provision/lib/cluster.js';
import { waitFor } from '../../provision/lib/guest.js';
import type { StepContext } from '../../provision/lib/step.js';
import { KlabError } from '../model/errors.js';
import { notice, task } from '../model/events.js';
import { hypervisorSettings } from '../model/hypervisor.js';
import { libvirtNames } from '../model/lab-paths.js';
import type { LabSpec, VmPlan } from '../model/spec.js';
import { type NewNode, withNodeAdded, withNodeRemoved } from '../model/spec-edit.js';
import { parseSpecText } from '../model/spec-file.js';
import { saveState } from '../model/state.js';
import { firstMaster, isEtcdMember } from '../model/topology.js';
import { generatePki, readBootstrapTokens } from '../pki/generate.js';
import type { BootstrapToken } from '../pki/secrets.js';
import { chooseLabHypervisor, renderLabVagrantfile } from './create.js';
import {
  type Lab,
  type LabRequest,
  labStack,
  openCreatedLab,
  stepContext,
  withHosts,
} from './lab.js';
import { runSteps } from './pipeline.js';

/** Why a VM may not leave the lab (undefined: it may). */
export function removalRefusal(spec: LabSpec, name: string): string | undefined {
  const vm = spec.vms.find((entry) => entry.name === name);
  if (!vm) return undefined;
  if (vm.role === 'master') {
    return `${name} is the lab's master: the API server, the controllers and every kubeconfig are on it, so the lab would have no cluster left`;
  }
  if (isEtcdMember(spec, vm)) {
    const count = spec.etcdMembers.length;
    return count === 1
      ? `${name} runs the lab's only etcd member: removing it loses every object of the cluster`
      : `${name} runs one of the ${count} etcd members (etcd.members in klab.yaml): with ${count - 1} left, etcd needs all ${count - 1} healthy to keep quorum, and the API server and flanneld on every VM still name it; klab node remove takes only VMs outside etcd`;
  }
  return undefined;
}

/** Why NAME cannot join as a new worker (undefined: it can, or it is a join to finish). */
export function addRefusal(spec: LabSpec, name: string): string | undefined {
  const vm = spec.vms.find((entry) => entry.name === name);
  if (vm && vm.role !== 'node') return `${name} is already the lab's ${vm.role}`;
  return undefined;
}

async function specText(lab: Lab): Promise<string | undefined> {
  return readFile(lab.paths.specFile, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
}

/** Writes klab.yaml only if the result is a valid spec (else nothing is changed). */
async function writeSpec(lab: Lab, text: string): Promise<void> {
  parseSpecText(text, lab.spec.name, lab.paths.specFile);
  await writeFile(lab.paths.specFile, text);
}

async function requireRunning(lab: Lab, names: readonly string[]): Promise<void> {
  const states = await lab.vagrant.status();
  const stopped = names.filter((name) => states.get(name) !== 'running');
  if (stopped.length > 0) {
    throw new KlabError('KLAB_VM_NOT_RUNNING', `${stopped.join(', ')} not running`, {
      hint: 'Start the lab with "klab up", then run the same command again. Nothing was changed.',
    });
  }
}

/**
 * The spec as it is now in the Vagrantfile, with the box and the accelerator the lab was
 * created with (the VMs that run keep exactly their definition).
 */
async function rerender(lab: Lab): Promise<void> {
  const accelerator = lab.state.accelerator;
  const hypervisor = accelerator
    ? { accelerator, settings: hypervisorSettings(accelerator), reason: 'as the lab was created' }
    : await chooseLabHypervisor(lab);
  await renderLabVagrantfile(lab, hypervisor, lab.state.box ?? lab.spec.box);
}

function pkiOf(lab: Lab) {
  return task(lab.sink, 'Bring the lab PKI up to date (certificates, bootstrap tokens)', () =>
    generatePki({ ...lab.spec, stack: labStack(lab) }, { dir: lab.paths.pkiDir }),
  );
}

/**
 * A pod of the test-app image placed on the node by the scheduler, answering HTTP from the
 * master over the pod network: the node runs workloads and flannel reaches it.
 */
async function testPodOn(ctx: StepContext, vm: VmPlan): Promise<string> {
  const pod = `klab-node-check-${vm.name}`;
  const manifest = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: pod, namespace: 'default', labels: { app: 'klab-node-check' } },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': vm.name },
      containers: [
        {
          name: 'web',
          image: ctx.profile.testAppImage.image,
          imagePullPolicy: 'Never',
          ports: [{ containerPort: 80 }],
        },
      ],
    },
  };
  await kubectl(ctx, ['delete', 'pod', pod, '-n', 'default', '--ignore-not-found', '--wait']);
  await kubectl(ctx, ['apply', '-f', '-'], { stdin: JSON.stringify(manifest) });
  let ip = '';
  await waitFor(
    ctx,
    {
      what: `pod default/${pod} running and Ready on ${vm.name}`,
      vm: vm.name,
      timeoutMs: ctx.spec.timeouts.health * 1000,
      hint: `See why: klab ssh ${firstMaster(ctx.spec).name} -- kubectl describe pod ${pod}`,
    },
    async () => {
      const answer = await kubectl(
        ctx,
        [
          'get',
          'pod',
          pod,
          '-n',
          'default',
          '-o',
          'jsonpath={.spec.nodeName} {.status.phase} {.status.podIP} {.status.conditions[?(@.type=="Ready")].status}',
        ],
        { allowFailure: true },
      );
      const [node, phase, podIp, ready] = answer.stdout.trim().split(/\s+/);
      if (node && node !== vm.name) return `scheduled on ${node}, not ${vm.name}`;
      if (phase !== 'Running' || ready !== 'True' || !podIp) {
        return `${phase ?? 'not created'}${ready ? `, Ready ${ready}` : ''}`;
      }
      ip = podIp;
      return true;
    },
  );
  const master = firstMaster(ctx.spec);
  await waitFor(
    ctx,
    {
      what: `${master.name} reaches the pod on ${vm.name} at http://${ip}/ (the pod network)`,
      vm: vm.name,
      timeoutMs: 120_000,
      hint: `Look at flanneld on ${vm.name}: klab ssh ${vm.name} -- journalctl -u flanneld`,
    },
    async () => {
      const result = await ctx
        .host(master.name)
        .run(
          [
            'curl',
            '-sS',
            '-o',
            '/dev/null',
            '--max-time',
            '10',
            '-w',
            '%{http_code}',
            `http://${ip}/`,
          ],
          {
            allowFailure: true,
          },
        );
      const code = result.stdout.trim();
      return /^[1-5]\d\d$/.test(code)
        ? true
        : result.stderr.trim() || `curl exit ${result.exitCode}`;
    },
  );
  await kubectl(ctx, ['delete', 'pod', pod, '-n', 'default', '--ignore-not-found', '--wait=false']);
  return ip;
}

export interface NodeAddResult {
  name: string;
  ip: string;
  seconds: number;
  resumed: boolean;
}

export async function addNode(request: LabRequest, node: NewNode): Promise<NodeAddResult> {
  const started = Date.now();
  let lab = await openCreatedLab(request);
  const refusal = addRefusal(lab.spec, node.name);
  if (refusal) {
    throw new KlabError('KLAB_NODE_REFUSED', `not added: ${refusal}`, {
      hint: 'Pick another name ("klab status" lists the VMs). Nothing was changed.',
    });
  }
  const resumed = lab.spec.vms.some((vm) => vm.name === node.name);
  await requireRunning(
    lab,
    lab.spec.vms.filter((vm) => vm.name !== node.name).map((vm) => vm.name),
  );
  if (!resumed) {
    await writeSpec(lab, withNodeAdded(await specText(lab), lab.spec, node));
    lab = await openCreatedLab(request);
  } else {
    notice(
      lab.sink,
      'NODE_RESUMED',
      `${node.name} is in klab.yaml already: finishing its join (what is done is kept)`,
      'info',
    );
  }
  const vm = lab.spec.vms.find((entry) => entry.name === node.name);
  if (!vm) throw new KlabError('KLAB_INTERNAL', `${node.name} is not in the spec after the edit`);
  notice(
    lab.sink,
    'SPEC_UPDATED',
    `klab.yaml lists ${vm.name} (${vm.ip}, ${vm.memory} MB); the VMs' addresses and the etcd members are written out, so they stay as they are`,
    'info',
  );
  await rerender(lab);
  await pkiOf(lab);
  await task(
    lab.sink,
    `Boot ${vm.name}`,
    () => lab.vagrant.up([vm.name], false, lab.spec.timeouts.boot * 1000),
    { code: () => 'VMS_BOOTED', subject: vm.name },
  );
  await withHosts(lab, async (pool) => {
    const ctx = stepContext(lab, pool);
    await runSteps(
      provisioningSteps(lab.spec),
      ctx,
      lab.state,
      { afterStep: () => saveState(lab.paths.stateFile, lab.state) },
      new Set([vm.name]),
    );
    await task(lab.sink, `A test pod on ${vm.name}, reached over the pod network`, () =>
      testPodOn(ctx, vm),
    );
  });
  await saveState(lab.paths.stateFile, lab.state);
  const seconds = Math.round((Date.now() - started) / 1000);
  lab.sink.emit({
    kind: 'result',
    code: 'NODE_ADDED',
    text:
      `${vm.name} (${vm.ip}) joined the lab and runs pods (${seconds} s).\n` +
      `The checkpoints and snapshots taken before it do not hold ${vm.name}: "klab reset" refuses them until it is removed ("klab node remove ${vm.name}"); "klab snapshot save NAME" keeps the lab as it is now.`,
    data: { kind: 'Node', name: vm.name, ip: vm.ip, seconds, resumed },
  });
  return { name: vm.name, ip: vm.ip, seconds, resumed };
}

async function removeLeases(ctx: StepContext, vm: VmPlan): Promise<string[]> {
  const keys = [...(await flannelLeases(ctx))].filter(([, ip]) => ip === vm.ip).map(([key]) => key);
  for (const key of keys) await deleteLease(ctx, key);
  return keys;
}

/** The bootstrap token klab issued for a node (undefined: none, or no PKI file). */
async function tokenOf(pkiDir: string, node: string): Promise<BootstrapToken | undefined> {
  return (await readBootstrapTokens(pkiDir)).find((entry) => entry.node === node);
}

/**
 * The node out of the cluster, in this order: drained (its pods evicted while it still
 * runs), its Node object deleted, its flannel lease deleted (flanneld on the others drops
 * the route), its bootstrap token deleted. Whatever is already gone is skipped.
 */
export async function leaveCluster(
  ctx: StepContext,
  vm: VmPlan,
  token: BootstrapToken | undefined,
): Promise<void> {
  const sink = ctx.sink;
  const known = await kubectl(ctx, ['get', 'node', vm.name, '-o', 'name'], { allowFailure: true });
  if (known.exitCode === 0) {
    await task(sink, `Drain ${vm.name} (cordon, evict its pods)`, async () => {
      const drained = await kubectl(
        ctx,
        [
          'drain',
          vm.name,
          '--ignore-daemonsets',
          '--delete-local-data',
          '--force',
          '--grace-period=20',
          '--timeout=240s',
        ],
        { allowFailure: true, timeoutMs: 300_000 },
      );
      if (drained.exitCode !== 0) {
        notice(
          sink,
          'DRAIN_INCOMPLETE',
          `kubectl drain ${vm.name} did not finish (${drained.stderr.trim().split('\n').pop() ?? ''}); its pods go with the Node object`,
        );
      }
    });
  }
  await task(sink, `Delete the Node ${vm.name}`, async () => {
    await kubectl(ctx, ['delete', 'node', vm.name, '--ignore-not-found']);
  });
  await task(
    sink,
    `Remove the flannel lease of ${vm.name} from etcd`,
    () => removeLeases(ctx, vm),
    (keys) => (keys.length === 0 ? 'none left' : keys.join(', ')),
  );
  if (token) {
    await task(sink, `Delete the bootstrap token of ${vm.name}`, () =>
      kubectl(ctx, [
        '-n',
        'kube-system',
        'delete',
        'secret',
        `bootstrap-token-${token.id}`,
        '--ignore-not-found',
      ]),
    );
  }
}

export interface NodeRemoveResult {
  name: string;
  snapshotsTouched: string[];
  seconds: number;
}

export async function removeNode(request: LabRequest, name: string): Promise<NodeRemoveResult> {
  const started = Date.now();
  let lab = await openCreatedLab(request);
  const vm = lab.spec.vms.find((entry) => entry.name === name);
  if (!vm) {
    throw new KlabError('KLAB_VM_UNKNOWN', `there is no VM "${name}" in this lab`, {
      hint: `The lab's VMs: ${lab.spec.vms.map((entry) => entry.name).join(', ')}.`,
    });
  }
  const refusal = removalRefusal(lab.spec, name);
  if (refusal) {
    throw new KlabError('KLAB_NODE_REFUSED', `not removed: ${refusal}`, {
      hint: 'Nothing was changed. "klab destroy" removes the whole lab.',
    });
  }
  const others = lab.spec.vms.filter((entry) => entry.name !== name).map((entry) => entry.name);
  await requireRunning(lab, others);
  const token = await tokenOf(lab.paths.pkiDir, name);
  await withHosts(lab, (pool) => leaveCluster(stepContext(lab, pool), vm, token), others);

  const domain = libvirtNames(lab.spec).domain(name);
  const snapshots = (await lab.libvirt.domainState(domain))
    ? await lab.libvirt.snapshots(domain)
    : [];
  await task(
    lab.sink,
    `Delete ${name}'s part of every snapshot`,
    async () => {
      for (const snapshot of snapshots) await lab.libvirt.deleteSnapshot(domain, snapshot);
      return snapshots.length;
    },
    (count) => `${count} deleted`,
  );
  await task(lab.sink, `Destroy the VM ${name}`, async () => {
    await lab.vagrant.destroy([name]);
    // What Vagrant left (a domain it lost track of) goes too.
    if (await lab.libvirt.domainState(domain)) await lab.libvirt.removeDomain(domain);
  });

  await writeSpec(lab, withNodeRemoved(await specText(lab), lab.spec, name));
  lab = await openCreatedLab(request);
  delete lab.state.steps[name];
  await saveState(lab.paths.stateFile, lab.state);
  await rerender(lab);
  await pkiOf(lab);
  // /etc/hosts on the VMs that stay (and the master's bootstrap tokens) follow the new list.
  await withHosts(lab, async (pool) => {
    const steps = provisioningSteps(lab.spec).filter((step) => step.coversLab);
    await runSteps(steps, stepContext(lab, pool), lab.state, {}, new Set());
  });
  await saveState(lab.paths.stateFile, lab.state);
  const seconds = Math.round((Date.now() - started) / 1000);
  const touched = snapshots;
  lab.sink.emit({
    kind: 'result',
    code: 'NODE_REMOVED',
    text:
      `${name} left the lab (${seconds} s): no Node, flannel lease, bootstrap token, VM, /etc/hosts line or klab.yaml entry remains.` +
      (touched.length > 0
        ? `\nThe ${touched.length} snapshot(s) taken before now (${touched.slice(0, 4).join(', ')}${touched.length > 4 ? ', ...' : ''}) still hold ${name} in the cluster's data and in /etc/hosts: a reset to one of them brings back a NotReady Node ${name}. "klab snapshot save NAME" keeps the lab as it is now.`
        : ''),
    data: { kind: 'Node', name, seconds, snapshots: touched },
  });
  return { name, snapshotsTouched: touched, seconds };
}
