/**
 * klab etcd backup / restore: the cluster's whole state (every Kubernetes object, flannel's
 * leases) as one etcd snapshot in the lab directory, and back.
 *
 * Backup: a snapshot from a healthy member, checked with `snapshot status`, copied to
 * <lab>/.klab/backups/etcd-<time>.db. Restore: the file checked first (nothing stops for a
 * bad file); then the control plane and the kubelets stopped, etcd stopped on every member,
 * each member's data rebuilt from the file with its own name and peer URL (the old data kept
 * beside it), etcd started and waited for, then the rest started and waited for.
 */
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ensureNetworkConfig } from '../../provision/flannel/index.js';
import { etcdctl, kubectl } from '../../provision/lib/cluster.js';
import { controlPlaneHealthy, etcdHealthy, waitProbe } from '../../provision/lib/probes.js';
import type { StepContext } from '../../provision/lib/step.js';
import { KlabError } from '../model/errors.js';
import { result, task } from '../model/events.js';
import { GUEST } from '../model/guest-paths.js';
import type { LabSpec, VmPlan } from '../model/spec.js';
import { etcdInitialCluster, etcdMembers, masters, nodes } from '../model/topology.js';
import { type LabRequest, openCreatedLab, stepContext, withHosts } from './lab.js';

/** Where a snapshot waits on a VM (root only). */
const REMOTE_SNAPSHOT = '/var/tmp/klab-etcd-snapshot.db';

export interface SnapshotStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

/** `etcdctl snapshot status -w json` -> its figures (undefined: not a snapshot). */
export function parseSnapshotStatus(json: string): SnapshotStatus | undefined {
  try {
    const value = JSON.parse(json) as Partial<SnapshotStatus>;
    if (typeof value.revision !== 'number' || typeof value.totalKey !== 'number') return undefined;
    return {
      hash: value.hash ?? 0,
      revision: value.revision,
      totalKey: value.totalKey,
      totalSize: value.totalSize ?? 0,
    };
  } catch {
    return undefined;
  }
}

/** backup file name for a moment: etcd-20261130-091500.db */
export function backupName(at: Date): string {
  const stamp = at
    .toISOString()
    .replace(/\.\d+Z$/, '')
    .replace(/[-:]/g, '')
    .replace('T', '-');
  return `etcd-${stamp}.db`;
}

/**
 * The command that rebuilds one member's data directory from the snapshot: its own name
 * and peer URL, the lab's cluster and token (as its unit starts it), a fresh directory.
 */
export function restoreArgs(spec: LabSpec, member: VmPlan, snapshot: string, dataDir: string) {
  return [
    'snapshot',
    'restore',
    snapshot,
    `--name=${member.name}`,
    `--initial-cluster=${etcdInitialCluster(spec)}`,
    `--initial-cluster-token=klab-${spec.name}`,
    `--initial-advertise-peer-urls=https://${member.ip}:2380`,
    `--data-dir=${dataDir}`,
  ];
}

async function healthyMember(ctx: StepContext): Promise<VmPlan> {
  for (const member of etcdMembers(ctx.spec)) {
    if ((await etcdHealthy()(ctx, member)).length === 0) return member;
  }
  throw new KlabError('KLAB_ETCD_UNHEALTHY', 'no etcd member is healthy: nothing to back up', {
    hint: 'klab doctor --guests shows each member; klab ssh <member> -- sudo journalctl -u etcd -n 50',
  });
}

async function snapshotStatus(ctx: StepContext, member: VmPlan, file: string) {
  const answer = await etcdctl(ctx, member, ['snapshot', 'status', file, '-w', 'json'], {
    allowFailure: true,
  });
  return parseSnapshotStatus(answer.stdout.trim());
}

export interface BackupReport {
  file: string;
  member: string;
  status: SnapshotStatus;
  bytes: number;
}

export async function etcdBackup(request: LabRequest, file?: string): Promise<BackupReport> {
  const lab = await openCreatedLab(request);
  const local = path.resolve(file ?? path.join(lab.paths.backupDir, backupName(new Date())));
  await mkdir(path.dirname(local), { recursive: true });
  const report = await withHosts(lab, async (pool) => {
    const ctx = stepContext(lab, pool);
    const member = await healthyMember(ctx);
    const host = ctx.host(member.name);
    const status = await task(lab.sink, `Snapshot etcd on ${member.name}`, async () => {
      await etcdctl(ctx, member, ['snapshot', 'save', REMOTE_SNAPSHOT], { timeoutMs: 300_000 });
      const checked = await snapshotStatus(ctx, member, REMOTE_SNAPSHOT);
      if (!checked) {
        throw new KlabError(
          'KLAB_ETCD_BACKUP_FAILED',
          `the snapshot on ${member.name} does not check out`,
          {
            vm: member.name,
            hint: "Run it again; klab doctor --guests shows the member's health.",
          },
        );
      }
      return checked;
    });
    const size = await host.run(['stat', '-c', '%s', REMOTE_SNAPSHOT], { sudo: true });
    const remoteBytes = Number(size.stdout.trim());
    try {
      // SFTP runs as the login user: the file is handed over for the copy only.
      await host.run(['chown', 'vagrant', REMOTE_SNAPSHOT], { sudo: true });
      await task(lab.sink, `Copy the snapshot to ${local}`, () =>
        host.downloadFile(REMOTE_SNAPSHOT, local),
      );
    } finally {
      await host.run(['rm', '-f', REMOTE_SNAPSHOT], { sudo: true, allowFailure: true });
    }
    const bytes = (await stat(local)).size;
    // The file is the database plus its sha256 (32 bytes): compared with the file on the VM.
    if (bytes !== remoteBytes) {
      throw new KlabError(
        'KLAB_ETCD_BACKUP_FAILED',
        `the copy of the snapshot is ${bytes} bytes, the snapshot on the member ${remoteBytes}`,
        { hint: 'Run klab etcd backup again.' },
      );
    }
    return { file: local, member: member.name, status, bytes };
  });
  result(
    lab.sink,
    'ETCD_BACKED_UP',
    `Backed up etcd from ${report.member}: revision ${report.status.revision}, ${report.status.totalKey} keys, ${report.bytes} bytes\n${report.file}\nRestore it with: klab etcd restore ${report.file}`,
    { kind: 'EtcdBackup', ...report },
  );
  return report;
}

const CONTROL_PLANE = ['kube-scheduler', 'kube-controller-manager', 'kube-apiserver'];

export interface RestoreReport {
  file: string;
  status: SnapshotStatus;
  /** Per member, where its data before the restore was kept. */
  keptData: Record<string, string>;
}

export async function etcdRestore(request: LabRequest, file: string): Promise<RestoreReport> {
  const local = path.resolve(file);
  const size = await stat(local).catch(() => undefined);
  if (!size?.isFile()) {
    throw new KlabError('KLAB_USAGE', `no such backup file: ${local}`, {
      hint: 'klab etcd backup writes them to .klab/backups/ in the lab directory.',
    });
  }
  const lab = await openCreatedLab(request);
  const stamp = backupName(new Date()).replace(/^etcd-|\.db$/g, '');
  const report = await withHosts(lab, (pool) =>
    restoreMembers(stepContext(lab, pool), local, stamp),
  );
  result(
    lab.sink,
    'ETCD_RESTORED',
    `Restored etcd from ${report.file} (revision ${report.status.revision}, ${report.status.totalKey} keys); the control plane and the kubelets are back.\nThe data before the restore is kept on each member: ${Object.entries(
      report.keptData,
    )
      .map(([vm, dir]) => `${vm}:${dir}`)
      .join(', ')}\nCheck the cluster with: klab verify`,
    { kind: 'EtcdRestore', ...report },
  );
  return report;
}

/**
 * Every member rebuilt from the snapshot file `local`, all or nothing: the file is checked
 * before anything stops; a member that fails to restore puts every member's old data back.
 * Then etcd, the control plane and the kubelets start again, each waited for.
 */
export async function restoreMembers(
  ctx: StepContext,
  local: string,
  stamp: string,
): Promise<RestoreReport> {
  const members = etcdMembers(ctx.spec);
  const [first] = members;
  if (!first) throw new KlabError('KLAB_INTERNAL', 'the lab has no etcd member');
  await task(ctx.sink, 'Copy the backup to every etcd member', () =>
    Promise.all(
      members.map((member) =>
        ctx.host(member.name).uploadFile(local, REMOTE_SNAPSHOT, { sudo: true, mode: 0o600 }),
      ),
    ),
  );
  // A file that is no snapshot stops everything here, before anything is stopped.
  const status = await snapshotStatus(ctx, first, REMOTE_SNAPSHOT);
  if (!status) {
    await Promise.all(
      members.map((member) =>
        ctx
          .host(member.name)
          .run(['rm', '-f', REMOTE_SNAPSHOT], { sudo: true, allowFailure: true }),
      ),
    );
    throw new KlabError(
      'KLAB_USAGE',
      `${local} is not an etcd snapshot (etcdctl snapshot status refuses it)`,
      {
        hint: 'Nothing was stopped or changed. Give a file written by klab etcd backup.',
      },
    );
  }
  const keptData: Record<string, string> = {};
  await task(ctx.sink, 'Stop the kubelets, the control plane and etcd', async () => {
    await Promise.all([
      ...nodes(ctx.spec).map((vm) =>
        ctx.host(vm.name).run(['systemctl', 'stop', 'kubelet'], { sudo: true, allowFailure: true }),
      ),
      ...masters(ctx.spec).map((vm) =>
        ctx
          .host(vm.name)
          .run(['systemctl', 'stop', ...CONTROL_PLANE], { sudo: true, allowFailure: true }),
      ),
    ]);
    await Promise.all(
      members.map((vm) => ctx.host(vm.name).run(['systemctl', 'stop', 'etcd'], { sudo: true })),
    );
  });
  const kept = `${GUEST.etcdData}.before-restore-${stamp}`;
  const failures = await task(
    ctx.sink,
    `Rebuild every member's data from the backup (revision ${status.revision})`,
    async () => {
      const outcomes = await Promise.allSettled(
        members.map(async (member) => {
          const host = ctx.host(member.name);
          await host.run(['mv', GUEST.etcdData, kept], { sudo: true });
          keptData[member.name] = kept;
          const restored = await etcdctl(
            ctx,
            member,
            restoreArgs(ctx.spec, member, REMOTE_SNAPSHOT, GUEST.etcdData),
            { allowFailure: true, timeoutMs: 300_000 },
          );
          if (restored.exitCode !== 0) {
            throw new KlabError(
              'KLAB_ETCD_RESTORE_FAILED',
              `etcdctl snapshot restore failed on ${member.name}`,
              { vm: member.name, outputTail: restored.stderr },
            );
          }
          await host.run(['chown', '-R', 'etcd:etcd', GUEST.etcdData], { sudo: true });
          await host.run(['chmod', '0700', GUEST.etcdData], { sudo: true });
        }),
      );
      return outcomes.flatMap((outcome) =>
        outcome.status === 'rejected' ? [outcome.reason as unknown] : [],
      );
    },
  );
  await Promise.all(
    members.map((member) =>
      ctx.host(member.name).run(['rm', '-f', REMOTE_SNAPSHOT], { sudo: true, allowFailure: true }),
    ),
  );
  if (failures.length > 0) {
    // All or nothing: members with another history would not form one cluster. Every
    // member gets its own data back, and the cluster starts as it was.
    await Promise.all(
      Object.keys(keptData).map((name) =>
        ctx
          .host(name)
          .run(['sh', '-c', 'rm -rf "$1" && mv "$2" "$1"', 'sh', GUEST.etcdData, kept], {
            sudo: true,
          }),
      ),
    );
    await startAll(ctx);
    const [first] = failures;
    const cause = first instanceof KlabError ? first : undefined;
    throw new KlabError(
      'KLAB_ETCD_RESTORE_FAILED',
      `${cause?.message ?? String(first)}; every member has its data from before the restore again, and the cluster runs as it was`,
      {
        ...(cause?.vm ? { vm: cause.vm } : {}),
        ...(cause?.outputTail ? { outputTail: cause.outputTail } : {}),
        hint: 'Check the file (klab etcd backup writes good ones) and the free space on the members, then run the restore again.',
      },
    );
  }
  await startAll(ctx);
  return { file: local, status, keptData };
}

/** etcd on every member (together: a member alone has no quorum), then the rest, waited for. */
async function startAll(ctx: StepContext): Promise<void> {
  const { spec } = ctx;
  const members = etcdMembers(spec);
  await task(ctx.sink, 'Start etcd and wait until every member is healthy', async () => {
    await Promise.all(
      members.map((vm) =>
        ctx.host(vm.name).run(['systemctl', 'start', '--no-block', 'etcd'], { sudo: true }),
      ),
    );
    for (const member of members) {
      await waitProbe(
        ctx,
        member,
        etcdHealthy(),
        `etcd on ${member.name} healthy after the restore`,
        `klab ssh ${member.name} -- sudo journalctl -u etcd -n 50`,
      );
    }
  });
  // flannel 0.10 (the v1.11.1 stack) keeps its config and leases in the v2 keyspace, which
  // a v3 snapshot does not hold: the config goes back in, and each flanneld leases again
  // (it asks for the subnet it had, so Docker's bridge stays right).
  if (ctx.profile.flannelEtcdApi === 'v2') {
    await task(ctx.sink, "Write flannel's network config again (etcd v2 keyspace)", async () => {
      await ensureNetworkConfig(ctx);
      await Promise.all(
        spec.vms.map((vm) =>
          // try-restart: a lab restored before its flannel step has no flanneld to restart.
          ctx.host(vm.name).run(['systemctl', 'try-restart', 'flanneld'], { sudo: true }),
        ),
      );
    });
  }
  await task(ctx.sink, 'Start the control plane and the kubelets', async () => {
    for (const vm of masters(spec)) {
      await ctx
        .host(vm.name)
        .run(['systemctl', 'start', ...[...CONTROL_PLANE].reverse()], { sudo: true });
      await waitProbe(
        ctx,
        vm,
        controlPlaneHealthy(),
        `the control plane on ${vm.name} healthy after the restore`,
        `klab ssh ${vm.name} -- sudo journalctl -u kube-apiserver -n 50`,
      );
    }
    await Promise.all(
      nodes(spec).map((vm) =>
        ctx.host(vm.name).run(['systemctl', 'start', 'kubelet'], { sudo: true }),
      ),
    );
    // Every node registered again and Ready (its kubelet posts status to the restored state).
    const [master] = masters(spec);
    if (master) {
      await waitProbe(
        ctx,
        master,
        async () => {
          const answer = await kubectl(ctx, ['get', 'nodes', '--no-headers'], {
            allowFailure: true,
          });
          const lines = answer.stdout.trim().split('\n').filter(Boolean);
          const notReady = nodes(spec)
            .map((vm) => vm.name)
            .filter((name) => !lines.some((line) => new RegExp(`^${name}\\s+Ready\\b`).test(line)));
          return notReady.length === 0 ? [] : [`not Ready yet: ${notReady.join(', ')}`];
        },
        'every node Ready after the restore',
        'klab ssh node1 -- sudo journalctl -u kubelet -n 50',
      );
    }
  });
}
