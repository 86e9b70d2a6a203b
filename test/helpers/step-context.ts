/** A StepContext for tests: hosts by name, the debian stack, TCG timing; override what differs. */
import { readFile } from 'node:fs/promises';
import type { StepContext } from '../../provision/lib/step.js';
import { nullSink, systemClock } from '../../src/model/events.js';
import { packagePath } from '../../src/model/package-root.js';
import type { RemoteHost } from '../../src/model/remote.js';
import type { LabSpec } from '../../src/model/spec.js';
import { clusterTuning } from '../../src/model/tuning.js';
import { installProfile } from '../../src/stacks/install.js';

export function testStepContext(
  spec: LabSpec,
  hosts: Record<string, RemoteHost> | ((vm: string) => RemoteHost),
  overrides: Partial<StepContext> = {},
): StepContext {
  return {
    spec,
    sink: nullSink,
    clock: systemClock,
    host: (vm) => {
      const host = typeof hosts === 'function' ? hosts(vm) : hosts[vm];
      if (!host) throw new Error(`no host ${vm}`);
      return host;
    },
    provisionFile: (...parts) => readFile(packagePath('provision', ...parts), 'utf8'),
    profile: installProfile('debian'),
    tuning: clusterTuning(spec, 'tcg'),
    pkiDir: '/nonexistent/pki',
    artifactFile: (id) => {
      throw new Error(`this test gives no artifact (${id})`);
    },
    ...overrides,
  };
}
