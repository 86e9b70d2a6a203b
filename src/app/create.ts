/** klab init and klab create: render the lab, boot it, provision it step by step, verify. */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { provisioningSteps } from '../../provision/index.js';
import { runChecks } from '../checks/index.js';
import { task } from '../model/events.js';
import { writeIfChanged } from '../model/files.js';
import type { HypervisorChoice } from '../model/hypervisor.js';
import { labPaths } from '../model/lab-paths.js';
import { saveState } from '../model/state.js';
import { generatePki } from '../pki/generate.js';
import { renderKlabYaml } from '../render/klab-yaml.js';
import { renderVagrantfile } from '../render/vagrantfile.js';
import { ensureStack } from './artifacts.js';
import { boxBuildPaths, LOCAL_BOXES, localRecipe, registeredBoxVersion } from './box.js';
import { resolveBox } from './box-choice.js';
import { checkpointMode, resourceNeeds } from './host-check.js';
import { detectHypervisor } from './hypervisor-detect.js';
import { type Lab, type LabRequest, openLab, stepContext, withHosts } from './lab.js';
import { bootVms, resumeLeftPaused } from './lifecycle.js';
import { stepsThrough } from './pipeline.js';
import {
  assertNoFailures,
  checkLabName,
  checkLibvirt,
  checkResources,
  checkSubnets,
  checkTools,
  checkVagrantLibvirt,
  freeDiskGb,
} from './preflight.js';
import { runStepsWithCheckpoints, stepClocksTask } from './snapshots.js';

/** Directories that may hold a kernel for the KVM probe: those of locally built boxes. */
async function probeKernelDirs(): Promise<string[]> {
  const dirs: string[] = [];
  for (const recipe of LOCAL_BOXES) dirs.push((await boxBuildPaths(recipe)).dir);
  return dirs;
}

export async function chooseLabHypervisor(lab: Lab): Promise<HypervisorChoice> {
  const choice = await detectHypervisor(lab.spec.hypervisor, lab.sink, await probeKernelDirs());
  if (choice.notice)
    lab.sink.emit({
      kind: 'notice',
      code: 'FALLBACK_HYPERVISOR',
      level: 'warn',
      text: choice.notice,
    });
  return choice;
}

export async function renderLabVagrantfile(
  lab: Lab,
  hypervisor: HypervisorChoice,
  box: string,
): Promise<boolean> {
  await mkdir(lab.paths.logDir, { recursive: true });
  const version = localRecipe(box) ? await registeredBoxVersion(box) : undefined;
  return writeIfChanged(
    lab.paths.vagrantfile,
    renderVagrantfile(lab.spec, hypervisor.settings, box, version),
  );
}

async function preflight(lab: Lab): Promise<void> {
  const findings = await task(lab.sink, 'Check the host', async () => {
    const tools = await checkTools();
    const results = [...tools];
    if (tools.every((finding) => finding.status === 'ok')) {
      const reachable = await checkLibvirt();
      results.push(await checkVagrantLibvirt(), reachable);
      if (reachable.status === 'ok') results.push(await checkLabName(lab.spec, lab.paths.dir));
    }
    results.push(await checkSubnets(lab.spec), ...(await checkResources(lab.spec)));
    return results;
  });
  for (const finding of findings.filter((f) => f.status === 'warn')) {
    lab.sink.emit({
      kind: 'notice',
      code: 'HOST_WARNING',
      level: 'warn',
      text: `${finding.check}: ${finding.detail}`,
    });
  }
  assertNoFailures(findings);
}

export async function initLab(request: LabRequest): Promise<string[]> {
  const { sink, ...options } = request;
  const paths = labPaths(options.dir);
  await mkdir(paths.dir, { recursive: true });
  const written: string[] = [];
  if (!existsSync(paths.specFile)) {
    const lab = await openLab(request);
    await writeFile(paths.specFile, renderKlabYaml(lab.spec));
    written.push(paths.specFile);
  }
  const lab = await openLab(request);
  const hypervisor = await chooseLabHypervisor(lab);
  if (await renderLabVagrantfile(lab, hypervisor, lab.state.box ?? lab.spec.box)) {
    written.push(paths.vagrantfile);
  }
  return written;
}

export interface CreateOptions {
  /** Stop after this step (the lesson that follows does the next one by hand). */
  until?: string;
}

export async function createLab(request: LabRequest, options: CreateOptions = {}): Promise<void> {
  const lab = await openLab(request);
  const sink = lab.sink;
  const started = Date.now();
  const allSteps = provisioningSteps(lab.spec);
  // A wrong step name is refused before anything boots.
  const steps = stepsThrough(allSteps, options.until);
  const partial = steps.length < allSteps.length;
  await preflight(lab);
  const hypervisor = await chooseLabHypervisor(lab);
  const resolved = await resolveBox(lab);
  const box = resolved.box;
  lab.state.box = box;
  const stack = await ensureStack(lab, resolved.stack);
  lab.state.stack = stack;
  lab.state.accelerator = hypervisor.accelerator;
  lab.state.createdAt ??= new Date().toISOString();
  if (!lab.state.checkpoints) {
    lab.state.checkpoints = checkpointMode(lab.spec, await freeDiskGb());
    if (lab.state.checkpoints === 'last-step') {
      const needs = resourceNeeds(lab.spec);
      const message =
        `Not enough free disk for a checkpoint after every step (about ${needs.checkpointGb} GB more), ` +
        'so klab keeps only the one after the last step (after-kubelet). Free space and run ' +
        '"klab snapshot save NAME" whenever you want more.';
      sink.emit({ kind: 'notice', code: 'FALLBACK_CHECKPOINTS', level: 'warn', text: message });
      lab.state.fallbacks = [...(lab.state.fallbacks ?? []), message];
    }
  }
  await renderLabVagrantfile(lab, hypervisor, box);
  await saveState(lab.paths.stateFile, lab.state);
  await task(
    sink,
    'Generate the lab PKI (CA, certificates, kubeconfigs)',
    () => generatePki({ ...lab.spec, stack }, { dir: lab.paths.pkiDir }),
    (result) => `${result.issued.length} issued, ${result.reused.length} reused`,
  );

  const resumed = await resumeLeftPaused(lab);
  await bootVms(lab);
  await withHosts(lab, async (pool) => {
    if (resumed.length > 0) await stepClocksTask(lab, pool);
    await runStepsWithCheckpoints(lab, pool, steps, stepContext(lab, pool));
    // The tutorial's own check, after the last checkpoint: the test app is not in any.
    // A lab built only part of the way has no cluster to check yet.
    if (!partial) await runChecks(stepContext(lab, pool));
  });
  await saveState(lab.paths.stateFile, lab.state);
  const seconds = Math.round((Date.now() - started) / 1000);
  const data = {
    kind: 'Lab',
    name: lab.spec.name,
    vms: lab.spec.vms.map((vm) => ({ name: vm.name, role: vm.role, ip: vm.ip })),
    box,
    stack,
    accelerator: hypervisor.accelerator,
    seconds,
  };
  if (partial) {
    const last = steps[steps.length - 1];
    const next = allSteps[steps.length];
    sink.emit({
      kind: 'result',
      code: 'LAB_BUILT_UP_TO',
      text:
        `Lab "${lab.spec.name}" is built up to "${last?.id}" (${seconds} s); "${next?.id}" and the steps after it are not done.\n` +
        `Next: do "${next?.id}" by hand ("klab lesson list" has lessons that start here: klab lesson start ID --here), or "klab create" to finish.`,
      data: { ...data, until: last?.id, next: next?.id },
    });
    return;
  }
  sink.emit({
    kind: 'result',
    code: 'LAB_READY',
    text:
      `Lab "${lab.spec.name}" is ready: ${lab.spec.vms.map((vm) => `${vm.name} ${vm.ip}`).join(', ')} ` +
      `(${seconds} s, box ${box}, stack ${stack}, ${hypervisor.accelerator.toUpperCase()}).\n` +
      `Next: klab ssh ${lab.spec.vms[0]?.name ?? 'master'} -- kubectl get nodes; klab verify; klab snapshot list`,
    data,
  });
}
