/**
 * klab.yaml edits for `klab node add` and `klab node remove`: the user's file changed in
 * place (comments and order kept), with what was implicit made explicit where a change in
 * the VM list would otherwise move it: the addresses (by default a VM's address follows its
 * place in the list) and the etcd members (by default the first three VMs).
 */
import YAML, { type Document, isMap, isSeq, type YAMLMap } from 'yaml';
import { KlabError } from './errors.js';
import { cidrSize, hostAddress, ipToInt, parseCidr } from './net.js';
import { FIRST_NODE_HOST, type LabSpec } from './spec.js';

export interface NewNode {
  name: string;
  memory?: number | undefined;
  cpus?: number | undefined;
}

function parse(text: string | undefined): Document {
  const doc = YAML.parseDocument(text ?? '', { uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new KlabError('KLAB_SPEC_PARSE', 'klab.yaml is not valid YAML', {
      details: doc.errors.map((error) => error.message),
      hint: 'Fix klab.yaml first; nothing was changed.',
    });
  }
  if (doc.contents === null) doc.contents = doc.createNode({}) as never;
  if (!isMap(doc.contents)) {
    throw new KlabError('KLAB_SPEC_INVALID', 'klab.yaml must be a mapping of settings', {
      hint: 'Fix klab.yaml first; nothing was changed.',
    });
  }
  return doc;
}

/**
 * The `nodes` list as written, made complete: when klab.yaml has none (the default lab),
 * the lab's VMs are written out, so that the edit below changes exactly one entry.
 */
function nodeList(doc: Document, spec: LabSpec) {
  const existing = doc.get('nodes');
  if (isSeq(existing)) return existing;
  const written = doc.createNode(spec.vms.map((vm) => ({ name: vm.name, role: vm.role })));
  doc.set('nodes', written);
  return written;
}

/** Every VM keeps the address it has now, whatever its place in the list becomes. */
function pinAddresses(doc: Document, spec: LabSpec): void {
  const list = nodeList(doc, spec);
  for (const item of list.items) {
    if (!isMap(item)) continue;
    const entry = item as YAMLMap;
    const vm = spec.vms.find((candidate) => candidate.name === entry.get('name'));
    if (vm && !entry.has('ip')) entry.set('ip', vm.ip);
  }
}

/** The etcd members stay the ones running now (the default would follow the list). */
function pinEtcdMembers(doc: Document, spec: LabSpec): void {
  if (doc.hasIn(['etcd', 'members'])) return;
  if (!doc.has('etcd')) doc.set('etcd', doc.createNode({}));
  doc.setIn(['etcd', 'members'], doc.createNode([...spec.etcdMembers]));
}

/** The first address of the lab subnet, from .10 on, that no VM uses. */
export function freeAddress(spec: LabSpec): string {
  const subnet = parseCidr(spec.network.subnet);
  if (!subnet) throw new Error(`invalid subnet ${spec.network.subnet}`);
  const used = new Set(spec.vms.map((vm) => ipToInt(vm.ip)));
  const size = cidrSize(subnet);
  for (let offset = FIRST_NODE_HOST; offset < size - 1; offset += 1) {
    const candidate = hostAddress(subnet, offset);
    if (!used.has(ipToInt(candidate))) return candidate;
  }
  throw new KlabError(
    'KLAB_NODE_REFUSED',
    `network.subnet ${spec.network.subnet} has no free address left for another VM`,
    { hint: 'Remove a VM first ("klab node remove NAME").' },
  );
}

/** klab.yaml with a worker node appended (its address and the etcd members pinned). */
export function withNodeAdded(text: string | undefined, spec: LabSpec, node: NewNode): string {
  const doc = parse(text);
  pinAddresses(doc, spec);
  pinEtcdMembers(doc, spec);
  const entry: Record<string, unknown> = { name: node.name, role: 'node', ip: freeAddress(spec) };
  if (node.memory !== undefined) entry.memory = node.memory;
  if (node.cpus !== undefined) entry.cpus = node.cpus;
  nodeList(doc, spec).add(doc.createNode(entry));
  return doc.toString();
}

/** klab.yaml without the VM (the others keep their addresses, etcd its members). */
export function withNodeRemoved(text: string | undefined, spec: LabSpec, name: string): string {
  const doc = parse(text);
  pinAddresses(doc, spec);
  pinEtcdMembers(doc, spec);
  const list = nodeList(doc, spec);
  const index = list.items.findIndex((item) => isMap(item) && item.get('name') === name);
  if (index >= 0) list.delete(index);
  return doc.toString();
}
