/**
 * The lab spec: what `klab.yaml` may say, its defaults (the tutorial's lab), and the
 * plan derived from it. The schema is the single source of the TypeScript types.
 */
import { z } from 'zod';
import { cidrContains, cidrSize, cidrsOverlap, hostAddress, ipToInt, parseCidr } from './net.js';

export const DEFAULT_BOX = 'generic/ubuntu1804';
export const DEFAULT_STACK = 'v1.11.1';
export const STACKS = ['v1.11.1', 'debian'] as const;
export type StackName = (typeof STACKS)[number];

export const DEFAULT_NODE = { memory: 2048, cpus: 2, disk: 30 } as const;
export const DEFAULT_NODES = [
  { name: 'master', role: 'master' },
  { name: 'node1', role: 'node' },
  { name: 'node2', role: 'node' },
  { name: 'node3', role: 'node' },
] as const;

/** Node addresses start here inside the private subnet: master .10, node1 .11, ... */
export const FIRST_NODE_HOST = 10;

/** An RFC 1123 label (it becomes a hostname and a Node name): no "-" at either end. */
const NAME = /^[a-z]([a-z0-9-]{0,29}[a-z0-9])?$/;

/** Vagrant box names: "owner/name" or a plain name; no spaces or shell characters. */
const BOX = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/;

/** RFC 1918 ranges: lab networks must never shadow real, routed addresses. */
const PRIVATE_RANGES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] as const;

const cidr = (what: string) =>
  z
    .string({ error: `must be a CIDR such as 192.168.56.0/24 (${what})` })
    .refine((text) => parseCidr(text) !== undefined, {
      error: `must be an IPv4 network in CIDR form with a /8../30 prefix, e.g. 192.168.56.0/24`,
    });

const seconds = (fallback: number) =>
  z
    .number({ error: 'must be a number of seconds' })
    .int({ error: 'must be a whole number of seconds' })
    .min(10, { error: 'must be >= 10' })
    .max(86400, { error: 'must be <= 86400' })
    .default(fallback);

const milliseconds = (min: number, max: number, why = '') =>
  z
    .number({ error: 'must be a number of milliseconds' })
    .int({ error: 'must be a whole number of milliseconds' })
    .min(min, { error: `must be >= ${min}` })
    .max(max, { error: `must be <= ${max}${why}` });

const url = () =>
  z
    .string({ error: 'must be a URL' })
    .regex(/^(https?|file):\/\/\S+$/, { error: 'must be an http://, https:// or file:// URL' });

const days = (fallback: number) =>
  z
    .number({ error: 'must be a number of days' })
    .int({ error: 'must be a whole number of days' })
    .min(1, { error: 'must be >= 1' })
    .max(36500, { error: 'must be <= 36500' })
    .default(fallback);

const NodeSchema = z.strictObject({
  name: z.string({ error: 'must be a string' }).regex(NAME, {
    error:
      'must be a valid host name: lower-case letters, digits and "-", starting with a letter, not ending with "-" (max 31)',
  }),
  role: z.enum(['master', 'node'], { error: 'must be "master" or "node"' }).default('node'),
  memory: z
    .number({ error: 'must be a number (MB)' })
    .int({ error: 'must be a whole number of MB' })
    .min(1024, { error: 'must be >= 1024' })
    .max(65536, { error: 'must be <= 65536' })
    .default(DEFAULT_NODE.memory),
  cpus: z
    .number({ error: 'must be a number' })
    .int({ error: 'must be a whole number' })
    .min(1, { error: 'must be >= 1' })
    .max(32, { error: 'must be <= 32' })
    // Unset: DEFAULT_NODE.cpus, except nodes under TCG (see guestCpus in tuning.ts).
    .optional(),
  disk: z
    .number({ error: 'must be a number (GB)' })
    .int({ error: 'must be a whole number of GB' })
    .min(10, { error: 'must be >= 10' })
    .max(2048, { error: 'must be <= 2048' })
    .default(DEFAULT_NODE.disk),
  ip: z
    .string({ error: 'must be an IPv4 address' })
    .regex(/^\d{1,3}(\.\d{1,3}){3}$/, { error: 'must be an IPv4 address' })
    .optional(),
});

export const SpecSchema = z
  .strictObject({
    name: z
      .string({ error: 'must be a string' })
      .regex(NAME, { error: 'must be lower-case letters, digits and "-", starting with a letter' })
      .optional(),
    box: z
      .string({ error: 'must be a box name' })
      .min(1, { error: 'must not be empty' })
      .regex(BOX, {
        error:
          'must be a Vagrant box name such as generic/ubuntu1804 (letters, digits, ".", "_", "-", one "/")',
      })
      .optional(),
    stack: z.enum(STACKS, { error: `must be one of: ${STACKS.join(', ')}` }).optional(),
    hypervisor: z
      .enum(['auto', 'kvm', 'qemu'], { error: 'must be "auto", "kvm" or "qemu"' })
      .default('auto'),
    network: z
      .strictObject({
        subnet: cidr('the private lab network').default('192.168.56.0/24'),
        managementSubnet: cidr('the Vagrant management network').default('192.168.121.0/24'),
        serviceCidr: cidr('Kubernetes services').default('10.254.0.0/16'),
        podCidr: cidr('pod network').default('172.30.0.0/16'),
        clusterDomain: z
          .string({ error: 'must be a DNS domain' })
          .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/, {
            error: 'must be a DNS domain such as cluster.local',
          })
          .default('cluster.local'),
      })
      .prefault({}),
    nodes: z
      .array(NodeSchema, { error: 'must be a list of VMs' })
      .min(1, { error: 'must list at least one VM' })
      .max(16, { error: 'must list at most 16 VMs' })
      .prefault(DEFAULT_NODES.map((node) => ({ ...node }))),
    timeouts: z
      .strictObject({
        boot: seconds(1800),
        ssh: seconds(300),
        command: seconds(1800),
        /** How long a cluster part may take to become healthy (etcd, apiserver, node Ready). */
        health: seconds(600),
        /** How long one `klab verify` check may wait for what it depends on. */
        check: seconds(300),
      })
      .prefault({}),
    snapshots: z
      .strictObject({ automatic: z.boolean({ error: 'must be true or false' }).default(true) })
      .prefault({}),
    etcd: z
      .strictObject({
        /** VMs that run an etcd member; default: the first three VMs (or the first VM). */
        members: z
          .array(z.string({ error: 'must be a VM name' }), { error: 'must be a list of VM names' })
          .min(1, { error: 'must name at least one VM' })
          .optional(),
        /** Raft timing; default: etcd's own (100/1000 ms) with KVM, 1000/10000 ms under TCG. */
        heartbeatMs: milliseconds(50, 5000).optional(),
        electionMs: milliseconds(500, 50_000, ' (etcd refuses more)').optional(),
      })
      .prefault({}),
    mirrors: z
      .strictObject({
        /** Replaces https://dl.k8s.io (same layout: <mirror>/v1.11.1/kubernetes-server-...). */
        k8s: url().optional(),
        /** Replaces https://github.com for release downloads (same layout). */
        github: url().optional(),
        /** Replaces https://download.docker.com (same layout). */
        docker: url().optional(),
        /** Registry mirrors by registry host, e.g. registry-1.docker.io: https://hub-mirror.example */
        registries: z
          .record(z.string(), url(), { error: 'must map registry hosts to URLs' })
          .default({}),
        /** Local directories searched first for artifact files (an unpacked offline copy). */
        dirs: z.array(z.string({ error: 'must be a directory path' })).default([]),
      })
      .prefault({}),
    pki: z
      .strictObject({
        /** Days the lab CA is valid: long, so a saved lab does not silently expire. */
        caDays: days(3650),
        /** Days each component certificate is valid; `klab certs check` warns 30 days ahead. */
        certDays: days(1095),
      })
      .prefault({}),
  })
  .superRefine((spec, ctx) => {
    const names = new Map<string, number>();
    spec.nodes.forEach((node, index) => {
      const first = names.get(node.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['nodes', index, 'name'],
          message: `duplicate VM name "${node.name}" (also nodes[${first}])`,
        });
      } else {
        names.set(node.name, index);
      }
    });
    const masters = spec.nodes.filter((node) => node.role === 'master');
    if (masters.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['nodes'], message: 'needs one VM with role: master' });
    } else if (masters.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['nodes'],
        message: `has ${masters.length} VMs with role: master (${masters.map((node) => node.name).join(', ')}); klab builds one control-plane VM, which every kubeconfig points at: give the others role: node`,
      });
    }

    const { heartbeatMs, electionMs } = spec.etcd;
    if (heartbeatMs !== undefined && electionMs !== undefined && electionMs < 5 * heartbeatMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['etcd', 'electionMs'],
        message: `must be at least 5 x etcd.heartbeatMs (${5 * heartbeatMs}); etcd refuses to start otherwise`,
      });
    }

    if (spec.etcd.members) {
      const known = new Set(spec.nodes.map((node) => node.name));
      spec.etcd.members.forEach((member, index) => {
        if (!known.has(member)) {
          ctx.addIssue({
            code: 'custom',
            path: ['etcd', 'members', index],
            message: `"${member}" is not a VM in nodes`,
          });
        }
      });
      if (new Set(spec.etcd.members).size !== spec.etcd.members.length) {
        ctx.addIssue({ code: 'custom', path: ['etcd', 'members'], message: 'lists a VM twice' });
      } else if (spec.etcd.members.length % 2 === 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['etcd', 'members'],
          message: `has ${spec.etcd.members.length} members; etcd needs an odd number to keep quorum`,
        });
      }
    }
    if (spec.pki.certDays > spec.pki.caDays) {
      ctx.addIssue({
        code: 'custom',
        path: ['pki', 'certDays'],
        message: 'must not exceed pki.caDays',
      });
    }

    const nets = {
      subnet: parseCidr(spec.network.subnet),
      managementSubnet: parseCidr(spec.network.managementSubnet),
      serviceCidr: parseCidr(spec.network.serviceCidr),
      podCidr: parseCidr(spec.network.podCidr),
    };
    const keys = Object.keys(nets) as (keyof typeof nets)[];
    const privateRanges = PRIVATE_RANGES.map((range) => parseCidr(range));
    for (const key of keys) {
      const net = nets[key];
      const inside = privateRanges.some(
        (range) =>
          range !== undefined &&
          net !== undefined &&
          cidrContains(range, hostAddress(net, 0)) &&
          cidrSize(net) <= cidrSize(range),
      );
      if (net && !inside) {
        ctx.addIssue({
          code: 'custom',
          path: ['network', key],
          message: `${spec.network[key]} is a public range; use a private one (${PRIVATE_RANGES.join(', ')}) so that the lab never hides real addresses`,
        });
      }
    }
    keys.forEach((a, i) => {
      for (const b of keys.slice(i + 1)) {
        const na = nets[a];
        const nb = nets[b];
        if (na && nb && cidrsOverlap(na, nb)) {
          ctx.addIssue({
            code: 'custom',
            path: ['network', b],
            message: `overlaps network.${a} (${spec.network[a]})`,
          });
        }
      }
    });

    const subnet = nets.subnet;
    if (!subnet) return;
    if (cidrSize(subnet) < FIRST_NODE_HOST + spec.nodes.length + 2) {
      ctx.addIssue({
        code: 'custom',
        path: ['network', 'subnet'],
        message: `is too small for ${spec.nodes.length} VMs starting at .${FIRST_NODE_HOST}`,
      });
      return;
    }
    const ips = new Map<string, number>();
    spec.nodes.forEach((node, index) => {
      const ip = node.ip ?? hostAddress(subnet, FIRST_NODE_HOST + index);
      if (node.ip !== undefined) {
        const bad = ip.split('.').some((octet) => Number(octet) > 255);
        if (bad) {
          ctx.addIssue({
            code: 'custom',
            path: ['nodes', index, 'ip'],
            message: 'must be an IPv4 address',
          });
          return;
        }
        if (!cidrContains(subnet, ip)) {
          ctx.addIssue({
            code: 'custom',
            path: ['nodes', index, 'ip'],
            message: `must be inside network.subnet (${spec.network.subnet})`,
          });
          return;
        }
        const offset = ipToInt(ip) - subnet.network;
        if (offset <= 1 || offset === cidrSize(subnet) - 1) {
          ctx.addIssue({
            code: 'custom',
            path: ['nodes', index, 'ip'],
            message: 'must not be the network, gateway (.1) or broadcast address',
          });
          return;
        }
      }
      const other = ips.get(ip);
      if (other !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['nodes', index, 'ip'],
          message: `${ip} is already used by nodes[${other}]`,
        });
      } else {
        ips.set(ip, index);
      }
    });
  });

export type RawSpec = z.input<typeof SpecSchema>;
export type ParsedSpec = z.output<typeof SpecSchema>;
export type NodeRole = 'master' | 'node';

export interface VmPlan {
  name: string;
  role: NodeRole;
  memory: number;
  /** vCPUs klab.yaml asked for, or the default; the Vagrantfile uses guestCpus(). */
  cpus: number;
  /** Whether klab.yaml set cpus (then it holds under TCG too). */
  cpusSet: boolean;
  disk: number;
  /** Address on the private lab network (eth1). */
  ip: string;
}

/** The validated spec with every default filled in and every derived value computed. */
export interface LabSpec {
  name: string;
  box: string;
  stack: StackName;
  /** Which of box/stack the user set explicitly (klab.yaml or a flag): no fallback for those. */
  insisted: { box: boolean; stack: boolean };
  hypervisor: 'auto' | 'kvm' | 'qemu';
  network: ParsedSpec['network'] & { gateway: string; managementGateway: string };
  vms: VmPlan[];
  timeouts: ParsedSpec['timeouts'];
  snapshots: ParsedSpec['snapshots'];
  /** Names of the VMs that run etcd (an odd number). */
  etcdMembers: string[];
  /** Raft timing the user set in klab.yaml; unset parts follow the hypervisor (see tuning.ts). */
  etcdTiming: { heartbeatMs?: number | undefined; electionMs?: number | undefined };
  pki: ParsedSpec['pki'];
  mirrors: ParsedSpec['mirrors'];
}

/** Default etcd members: three VMs when there are three or more, else the first one. */
export function defaultEtcdMembers(names: readonly string[]): string[] {
  return names.length >= 3 ? names.slice(0, 3) : names.slice(0, 1);
}

export function planLab(parsed: ParsedSpec, defaultName: string): LabSpec {
  const subnet = parseCidr(parsed.network.subnet);
  const management = parseCidr(parsed.network.managementSubnet);
  if (!subnet || !management) throw new Error('planLab called with an unvalidated spec');
  return {
    name: parsed.name ?? defaultName,
    box: parsed.box ?? DEFAULT_BOX,
    stack: parsed.stack ?? DEFAULT_STACK,
    insisted: { box: parsed.box !== undefined, stack: parsed.stack !== undefined },
    hypervisor: parsed.hypervisor,
    network: {
      ...parsed.network,
      gateway: hostAddress(subnet, 1),
      managementGateway: hostAddress(management, 1),
    },
    vms: parsed.nodes.map((node, index) => ({
      name: node.name,
      role: node.role,
      memory: node.memory,
      cpus: node.cpus ?? DEFAULT_NODE.cpus,
      cpusSet: node.cpus !== undefined,
      disk: node.disk,
      ip: node.ip ?? hostAddress(subnet, FIRST_NODE_HOST + index),
    })),
    timeouts: parsed.timeouts,
    snapshots: parsed.snapshots,
    etcdMembers: parsed.etcd.members ?? defaultEtcdMembers(parsed.nodes.map((node) => node.name)),
    etcdTiming: { heartbeatMs: parsed.etcd.heartbeatMs, electionMs: parsed.etcd.electionMs },
    pki: parsed.pki,
    mirrors: parsed.mirrors,
  };
}

/** A directory name turned into a valid lab name ("My Lab_2" -> "my-lab-2"). */
export function labNameFromDir(dirName: string): string {
  const cleaned = dirName
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^[^a-z]+/, '')
    .replace(/-+$/, '')
    .slice(0, 31);
  return cleaned.length > 0 ? cleaned : 'lab';
}
