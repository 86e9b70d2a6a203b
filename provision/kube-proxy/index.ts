/**
 * kube-proxy on every VM (the master too, so Service ClusterIPs answer from every VM), in
 * iptables mode, bound to the private address. The unit: provision/kube-proxy/*.ejs; its
 * config is a KubeProxyConfiguration written with the yaml package.
 */
import { GUEST } from '../../src/model/guest-paths.js';
import type { LabSpec, VmPlan } from '../../src/model/spec.js';
import { commandOk, httpOk } from '../lib/probes.js';
import { serviceStep } from '../lib/service-step.js';
import { renderTemplate } from '../lib/template.js';
import { yamlFile } from '../lib/yaml-file.js';

const CONFIG = `${GUEST.k8sDir}/kube-proxy-config.yaml`;

export function renderKubeProxyConfig(spec: LabSpec, vm: VmPlan): string {
  return yamlFile('Managed by klab.', {
    kind: 'KubeProxyConfiguration',
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    bindAddress: vm.ip,
    clientConnection: { kubeconfig: `${GUEST.k8sDir}/kube-proxy.kubeconfig` },
    clusterCIDR: spec.network.podCidr,
    healthzBindAddress: `${vm.ip}:10256`,
    metricsBindAddress: '127.0.0.1:10249',
    hostnameOverride: vm.name,
    mode: 'iptables',
  });
}

export function renderKubeProxyUnit(): string {
  return renderTemplate('kube-proxy', 'kube-proxy.service.ejs', {
    paths: GUEST,
    configFile: CONFIG,
  });
}

export const kubeProxyStep = serviceStep({
  id: 'kube-proxy',
  title: 'kube-proxy on every VM (Service ClusterIPs via iptables)',
  units: ['kube-proxy'],
  files: (ctx, vm) => [
    { path: CONFIG, content: renderKubeProxyConfig(ctx.spec, vm), mode: 0o644 },
    { path: `${GUEST.units}/kube-proxy.service`, content: renderKubeProxyUnit(), mode: 0o644 },
  ],
  probes: [
    httpOk('kube-proxy healthz', (vm) => `http://${vm.ip}:10256/healthz`),
    commandOk(
      ['iptables', '-t', 'nat', '-S', 'KUBE-SERVICES'],
      'no KUBE-SERVICES chain in the nat table yet',
      { sudo: true },
    ),
  ],
});
