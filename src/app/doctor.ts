/** `klab doctor`: every host check, each with a fix. */
import { Vagrant } from '../adapters/vagrant.js';
import { isKlabError } from '../model/errors.js';
import type { EventSink } from '../model/events.js';
import { labPaths } from '../model/lab-paths.js';
import type { LabSpec } from '../model/spec.js';
import { loadSpec } from '../model/spec-file.js';
import { boxBuildPaths, LOCAL_BOXES, localRecipe } from './box.js';
import { detectHypervisor } from './hypervisor-detect.js';
import {
  checkLabName,
  checkLibvirt,
  checkResources,
  checkSubnets,
  checkTools,
  checkVagrantLibvirt,
  type Finding,
} from './preflight.js';

export async function runDoctor(dir: string, sink: EventSink): Promise<Finding[]> {
  const findings: Finding[] = [];
  const tools = await checkTools();
  findings.push(...tools);
  const toolsOk = tools.every((finding) => finding.status === 'ok');
  const libvirtFinding = toolsOk ? await checkLibvirt() : undefined;
  if (libvirtFinding) findings.push(await checkVagrantLibvirt(), libvirtFinding);

  let spec: LabSpec | undefined;
  try {
    spec = await loadSpec(labPaths(dir).dir);
    findings.push({
      check: 'klab.yaml',
      status: 'ok',
      detail: `lab "${spec.name}", ${spec.vms.length} VMs`,
    });
  } catch (error) {
    if (!isKlabError(error)) throw error;
    findings.push({
      check: 'klab.yaml',
      status: 'fail',
      detail: [error.message, ...error.details].join('; '),
      fix: error.hint,
    });
  }

  const kernelDirs = await Promise.all(
    LOCAL_BOXES.map(async (box) => (await boxBuildPaths(box)).dir),
  );
  const hypervisor = await detectHypervisor(spec?.hypervisor ?? 'auto', sink, kernelDirs);
  findings.push({
    check: 'hypervisor',
    status: hypervisor.accelerator === 'kvm' ? 'ok' : 'warn',
    detail:
      hypervisor.accelerator === 'kvm'
        ? `KVM (${hypervisor.reason})`
        : `TCG software emulation: ${hypervisor.reason}`,
    ...(hypervisor.accelerator === 'kvm'
      ? {}
      : {
          fix: 'Nothing to do: klab uses TCG by itself. On a bare-metal host, enable VT-x/AMD-V for KVM.',
        }),
  });

  if (spec) {
    findings.push(await checkSubnets(spec), ...(await checkResources(spec)));
    if (libvirtFinding?.status === 'ok') {
      findings.push(await checkLabName(spec, labPaths(dir).dir));
    }
    if (toolsOk) {
      const boxes = await new Vagrant(labPaths(dir).dir).boxList().catch(() => []);
      const present = boxes.some((box) => box.name === spec.box && box.provider === 'libvirt');
      findings.push(
        present
          ? { check: 'box', status: 'ok', detail: `${spec.box} is installed` }
          : {
              check: 'box',
              status: 'warn',
              detail: `${spec.box} is not installed${localRecipe(spec.box) ? '' : '; klab create will try to download it'}`,
              fix: localRecipe(spec.box)
                ? `klab create builds it, or now: sudo klab box build --name ${spec.box}`
                : 'If downloads are blocked, "sudo klab box build" makes klab/debian-12 (create falls back to it).',
            },
      );
    }
  }
  return findings;
}
