/**
 * Timing that follows the hypervisor. Under TCG (software emulation) a 2-core host runs
 * 8 guest vCPUs, and a guest can stall for a second or more: etcd with its defaults
 * (100 ms heartbeat, 1 s election timeout) then changes leader again and again, and
 * every change fails writes in flight ("etcdserver: leader changed"). etcd's tuning guide
 * says: heartbeat about the worst round trip between members, election timeout about 10x
 * that. Under TCG the "round trip" includes scheduling stalls, so klab uses 1 s / 10 s
 * there, and etcd's own defaults with KVM. klab.yaml's etcd.heartbeatMs/electionMs win.
 */
import type { Accelerator } from './hypervisor.js';
import type { LabSpec, VmPlan } from './spec.js';

export interface ClusterTuning {
  accelerator: Accelerator;
  etcdHeartbeatMs: number;
  etcdElectionMs: number;
  /** kube-controller-manager --node-monitor-grace-period: how long before a silent node is NotReady. */
  nodeMonitorGracePeriodS: number;
  /**
   * flanneld --iptables-resync: how often it checks its iptables rules, one short-lived
   * `iptables` process per rule (about 1.5 new processes a second with flannel's 5 s).
   * Measured under TCG on an idle node of the 4-VM lab (flanneld its only service): 65 % of
   * the vCPU busy with 5 s, 13 % with 60 s (docs/performance.md, 2026-12-03). A rule
   * somebody deletes comes back within that time.
   */
  flannelIptablesResyncS: number;
  /**
   * The kubelet's runtimeRequestTimeout: how long one call into Docker may take. A pod's
   * sandbox that takes longer to start is killed and made again, from the beginning. Under
   * TCG, on a node that also runs an etcd member, starting one took more than the default
   * 2 minutes: seen in two 4-VM runs (2026-12-04), the kubelet then killed and remade the
   * same sandbox for 15 minutes, each try adding to the load that made it slow.
   */
  kubeletRuntimeRequestTimeoutS: number;
}

const BY_ACCELERATOR: Record<Accelerator, Omit<ClusterTuning, 'accelerator'>> = {
  kvm: {
    etcdHeartbeatMs: 100,
    etcdElectionMs: 1000,
    nodeMonitorGracePeriodS: 40,
    flannelIptablesResyncS: 5,
    kubeletRuntimeRequestTimeoutS: 120,
  },
  tcg: {
    etcdHeartbeatMs: 1000,
    etcdElectionMs: 10_000,
    nodeMonitorGracePeriodS: 120,
    flannelIptablesResyncS: 60,
    kubeletRuntimeRequestTimeoutS: 600,
  },
};

/** The lab's timing; an unknown accelerator (a lab from before klab recorded it) counts as TCG. */
export function clusterTuning(spec: LabSpec, accelerator: Accelerator | undefined): ClusterTuning {
  const chosen = accelerator ?? 'tcg';
  const base = BY_ACCELERATOR[chosen];
  const heartbeat = spec.etcdTiming.heartbeatMs ?? base.etcdHeartbeatMs;
  // An explicit heartbeat alone keeps etcd's 10x rule for the election timeout.
  const election =
    spec.etcdTiming.electionMs ??
    (spec.etcdTiming.heartbeatMs !== undefined ? heartbeat * 10 : base.etcdElectionMs);
  return {
    accelerator: chosen,
    etcdHeartbeatMs: heartbeat,
    etcdElectionMs: election,
    nodeMonitorGracePeriodS: base.nodeMonitorGracePeriodS,
    flannelIptablesResyncS: base.flannelIptablesResyncS,
    kubeletRuntimeRequestTimeoutS: base.kubeletRuntimeRequestTimeoutS,
  };
}

/**
 * The vCPUs a VM gets. klab.yaml's cpus always win. Unset, a VM gets DEFAULT_NODE's 2,
 * except a node under TCG, which gets 1: a multi-vCPU guest under software emulation stops
 * all its vCPUs for some work (code invalidation, cross-CPU TLB flushes), so on a small
 * host, where the host descheduled one of them, the others wait; and the nodes' work
 * (kubelet, Docker, kube-proxy) needs no parallelism. The master keeps 2 for the apiserver
 * and etcd. Measured on the 4-VM lab: docs/performance.md.
 */
export function guestCpus(vm: VmPlan, accelerator: Accelerator): number {
  if (vm.cpusSet) return vm.cpus;
  return accelerator === 'tcg' && vm.role === 'node' ? 1 : vm.cpus;
}

/** libvirt's default CPU weight of a VM (cgroup cpu.shares). */
export const DEFAULT_CPU_SHARES = 1024;

/**
 * The CPU weight a VM gets from the host when every VM wants more than there is. Under TCG
 * on a small host that is all the time, and equal weights leave the master (apiserver,
 * etcd, controller manager: the work every node waits for) a quarter of the host in a
 * 4-VM lab: measured, the master's QEMU got 88 % of one core while three nodes got 25-35 %
 * each, and bootstrapping three kubelets at once starved it until kube-controller-manager
 * crash-looped (docs/performance.md, the sixth run). A master weighs 3x a node under TCG:
 * when all four are busy it gets half of the host. An idle VM gives its share away, so this
 * costs the nodes nothing when the master waits. Under KVM there is no such shortage:
 * libvirt's default.
 */
export function guestCpuShares(vm: VmPlan, accelerator: Accelerator): number {
  return accelerator === 'tcg' && vm.role === 'master'
    ? 3 * DEFAULT_CPU_SHARES
    : DEFAULT_CPU_SHARES;
}
