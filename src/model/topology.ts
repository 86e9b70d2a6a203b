/**
 * Who is what in a lab: masters, nodes, etcd members, the first master, where a part goes.
 * Every layer asks here; nobody filters spec.vms by role on its own.
 */
import { KlabError } from './errors.js';
import { hostAddress, parseCidr } from './net.js';
import type { LabSpec, VmPlan } from './spec.js';

/** Where a part runs: every VM, the masters, or the nodes (workers). */
export type Placement = 'all' | 'masters' | 'nodes';

export function isOn(vm: VmPlan, on: Placement): boolean {
  return on === 'all' || (on === 'masters' ? vm.role === 'master' : vm.role === 'node');
}

export function placed(spec: LabSpec, on: Placement): VmPlan[] {
  return spec.vms.filter((vm) => isOn(vm, on));
}

export function masters(spec: LabSpec): VmPlan[] {
  return placed(spec, 'masters');
}

export function nodes(spec: LabSpec): VmPlan[] {
  return placed(spec, 'nodes');
}

/** The master that holds the admin kubeconfig and answers kubectl (klab builds one). */
export function firstMaster(spec: LabSpec): VmPlan {
  const master = masters(spec)[0];
  if (!master) throw new KlabError('KLAB_INTERNAL', 'the lab has no master');
  return master;
}

export function isEtcdMember(spec: LabSpec, vm: VmPlan): boolean {
  return spec.etcdMembers.includes(vm.name);
}

export function etcdMembers(spec: LabSpec): VmPlan[] {
  return spec.vms.filter((vm) => isEtcdMember(spec, vm));
}

export function firstEtcdMember(spec: LabSpec): VmPlan {
  const member = etcdMembers(spec)[0];
  if (!member) throw new KlabError('KLAB_INTERNAL', 'the lab has no etcd member');
  return member;
}

/** The client URLs of every etcd member, as the apiserver and flanneld take them. */
export function etcdEndpoints(spec: LabSpec): string {
  return etcdMembers(spec)
    .map((vm) => `https://${vm.ip}:2379`)
    .join(',');
}

/**
 * The etcd a master's kube-apiserver talks to: the member on its own VM when it has one (as
 * kubeadm's stacked control plane does), else every member. Every member still holds every
 * write (Raft), but only the local one serves the apiserver's reads and watches: under
 * software emulation the nodes' members served them over TLS with the nodes' single vCPU,
 * beside the kubelet and Docker (docs/performance.md, 2026-12-03).
 */
export function apiserverEtcdEndpoints(spec: LabSpec, master: VmPlan): string {
  return isEtcdMember(spec, master) ? `https://${master.ip}:2379` : etcdEndpoints(spec);
}

/** --initial-cluster: name=peer URL of every member. */
export function etcdInitialCluster(spec: LabSpec): string {
  return etcdMembers(spec)
    .map((member) => `${member.name}=https://${member.ip}:2380`)
    .join(',');
}

/**
 * The cluster DNS Service's ClusterIP: the tenth address of the service range, as kubeadm
 * and most guides choose (the first is the `kubernetes` Service). The kubelets write it
 * into every pod's resolv.conf.
 */
export function clusterDnsIp(spec: LabSpec): string {
  const cidr = parseCidr(spec.network.serviceCidr);
  if (!cidr) throw new Error(`invalid serviceCidr ${spec.network.serviceCidr}`);
  return hostAddress(cidr, 10);
}
