/** Where a lab keeps its files, and the names it gives libvirt objects. */
import path from 'node:path';
import type { LabSpec } from './spec.js';

export interface LabPaths {
  dir: string;
  specFile: string;
  vagrantfile: string;
  /** klab's own state, logs and PKI live here, inside the lab directory. */
  klabDir: string;
  logDir: string;
  stateFile: string;
  pkiDir: string;
  /** klab etcd backup writes here. */
  backupDir: string;
  /** What `vagrant ssh-config` said of each running VM (app/ssh-config-cache.ts). */
  sshConfigFile: string;
}

export function labPaths(dir: string): LabPaths {
  const abs = path.resolve(dir);
  const klabDir = path.join(abs, '.klab');
  return {
    dir: abs,
    specFile: path.join(abs, 'klab.yaml'),
    vagrantfile: path.join(abs, 'Vagrantfile'),
    klabDir,
    logDir: path.join(klabDir, 'logs'),
    stateFile: path.join(klabDir, 'state.json'),
    pkiDir: path.join(klabDir, 'pki'),
    backupDir: path.join(klabDir, 'backups'),
    sshConfigFile: path.join(klabDir, 'ssh-config.json'),
  };
}

/** Relative to the lab directory, so rendered files do not depend on where the lab lives. */
export function consoleLogPath(vm: string): string {
  return `.klab/logs/${vm}-console.log`;
}

/** libvirt names: domains `klab-<lab>_<vm>`, networks `klab-<lab>` and `klab-<lab>-mgmt`. */
export function libvirtNames(spec: Pick<LabSpec, 'name'>) {
  return {
    domainPrefix: `klab-${spec.name}_`,
    network: `klab-${spec.name}`,
    managementNetwork: `klab-${spec.name}-mgmt`,
    domain: (vm: string) => `klab-${spec.name}_${vm}`,
  };
}
