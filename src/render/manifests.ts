/**
 * Kubernetes objects klab applies: TLS-bootstrap tokens and RBAC, and the test app, the
 * Traefik ingress and the cluster DNS that `klab verify` deploys. Pure: data in, YAML out;
 * golden-tested.
 */
import YAML from 'yaml';
import type { LabSpec } from '../model/spec.js';
import { clusterDnsIp } from '../model/topology.js';
import { APISERVER_KUBELET_USER } from '../pki/plan.js';
import type { BootstrapToken } from '../pki/secrets.js';
import type { InstallProfile } from '../stacks/install.js';

function documents(objects: readonly object[]): string {
  return objects.map((object) => YAML.stringify(object, { lineWidth: 0 })).join('---\n');
}

function binding(name: string, role: string, subject: string, kind: 'Group' | 'User' = 'Group') {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'klab' } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind, name: subject }],
  };
}

/**
 * An HTTP probe with room for a starved node: Kubernetes' defaults (1 s timeout, every
 * 10 s, 3 failures) flap pods in and out of the Endpoints on a host under software
 * emulation, and every flap is an etcd write, Events, and an iptables rewrite on every VM,
 * which starves the host further.
 */
function httpProbe(path: string, port: number, delay = 0) {
  return {
    httpGet: { path, port, scheme: 'HTTP' },
    ...(delay > 0 ? { initialDelaySeconds: delay } : {}),
    periodSeconds: 10,
    timeoutSeconds: 5,
    failureThreshold: 5,
  };
}

/** The binding that lets kube-apiserver use the kubelets' API (logs, exec, node proxy). */
export const APISERVER_TO_KUBELET_BINDING = 'klab:apiserver-to-kubelet';

export function apiserverToKubeletBinding(): object {
  return binding(
    APISERVER_TO_KUBELET_BINDING,
    'system:kubelet-api-admin',
    APISERVER_KUBELET_USER,
    'User',
  );
}

/**
 * One bootstrap token Secret per node and the three bindings TLS bootstrapping needs:
 * bootstrappers may create node CSRs, their client CSRs are approved automatically, and
 * nodes may renew their own client certificates. Plus the kubelets' other side: the
 * binding that lets kube-apiserver into their API (kubelets authorize by asking it).
 */
export function renderTlsBootstrap(tokens: readonly BootstrapToken[]): string {
  const secrets = tokens.map((token) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'bootstrap.kubernetes.io/token',
    metadata: {
      name: `bootstrap-token-${token.id}`,
      namespace: 'kube-system',
      labels: { 'app.kubernetes.io/managed-by': 'klab' },
    },
    stringData: {
      description: `klab: TLS bootstrap of kubelet on ${token.node}`,
      'token-id': token.id,
      'token-secret': token.secret,
      'usage-bootstrap-authentication': 'true',
      'usage-bootstrap-signing': 'true',
    },
  }));
  return documents([
    ...secrets,
    binding('klab:kubelet-bootstrap', 'system:node-bootstrapper', 'system:bootstrappers'),
    binding(
      'klab:node-autoapprove-bootstrap',
      'system:certificates.k8s.io:certificatesigningrequests:nodeclient',
      'system:bootstrappers',
    ),
    binding(
      'klab:node-autoapprove-renewal',
      'system:certificates.k8s.io:certificatesigningrequests:selfnodeclient',
      'system:nodes',
    ),
    apiserverToKubeletBinding(),
  ]);
}

export const VERIFY_NAMESPACE = 'klab-verify';
export const TEST_APP = 'php-apache';
export const INGRESS_HOST = 'php-apache.klab.test';

/** The page names the pod that served it, so a check can tell replicas apart. */
export const TEST_PAGE = `<?php
header("Content-Type: text/plain");
echo "klab test app\\n";
echo "served by: " . gethostname() . "\\n";
`;

/**
 * A name resolved inside the pod, with the pod's own resolv.conf (the kubelet's clusterDNS
 * and search domains): `curl http://POD_IP/dns.php?name=kubernetes.default`. The cluster DNS
 * check asks it; a learner can too.
 */
export const DNS_PAGE = `<?php
header("Content-Type: text/plain");
$name = isset($_GET["name"]) ? $_GET["name"] : "kubernetes.default";
$address = gethostbyname($name);
echo $name . " " . ($address === $name ? "unresolved" : $address) . "\\n";
`;

/** The pod the forward-drop lesson reaches by its IP: the test app's image, on one node. */
export const FORWARD_PROBE = 'forward-probe';

export function renderForwardProbe(profile: InstallProfile, node: string): string {
  return documents([
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: FORWARD_PROBE,
        namespace: 'default',
        labels: { app: FORWARD_PROBE, 'app.kubernetes.io/managed-by': 'klab' },
      },
      spec: {
        nodeName: node,
        containers: [
          {
            name: 'web',
            image: profile.testAppImage.image,
            imagePullPolicy: 'Never',
            ports: [{ containerPort: 80 }],
          },
        ],
      },
    },
  ]);
}

export interface TestAppInput {
  profile: InstallProfile;
  replicas: number;
}

/** The PHP/Apache test app: a Deployment (one replica per node), its Service and Ingress. */
export function renderTestApp(input: TestAppInput): string {
  const labels = { app: TEST_APP };
  const meta = (name: string) => ({
    name,
    namespace: VERIFY_NAMESPACE,
    labels: { ...labels, 'app.kubernetes.io/managed-by': 'klab' },
  });
  const ingress =
    input.profile.traefikMajor === 1
      ? {
          apiVersion: 'extensions/v1beta1',
          kind: 'Ingress',
          metadata: {
            ...meta(TEST_APP),
            annotations: { 'kubernetes.io/ingress.class': 'traefik' },
          },
          spec: {
            rules: [
              {
                host: INGRESS_HOST,
                http: {
                  paths: [{ path: '/', backend: { serviceName: TEST_APP, servicePort: 80 } }],
                },
              },
            ],
          },
        }
      : {
          apiVersion: 'networking.k8s.io/v1',
          kind: 'Ingress',
          metadata: meta(TEST_APP),
          spec: {
            ingressClassName: 'traefik',
            rules: [
              {
                host: INGRESS_HOST,
                http: {
                  paths: [
                    {
                      path: '/',
                      pathType: 'Prefix',
                      backend: { service: { name: TEST_APP, port: { number: 80 } } },
                    },
                  ],
                },
              },
            ],
          },
        };
  return documents([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: VERIFY_NAMESPACE } },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: meta(`${TEST_APP}-page`),
      data: { 'index.php': TEST_PAGE, 'dns.php': DNS_PAGE },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta(TEST_APP),
      spec: {
        replicas: input.replicas,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            containers: [
              {
                name: TEST_APP,
                image: input.profile.testAppImage.image,
                // Offline: the image was loaded on every node; never ask a registry.
                imagePullPolicy: 'Never',
                ports: [{ containerPort: 80 }],
                readinessProbe: httpProbe('/index.php', 80),
                volumeMounts: [
                  { name: 'page', mountPath: '/var/www/html/index.php', subPath: 'index.php' },
                  { name: 'page', mountPath: '/var/www/html/dns.php', subPath: 'dns.php' },
                ],
              },
            ],
            volumes: [{ name: 'page', configMap: { name: `${TEST_APP}-page` } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(TEST_APP),
      spec: { selector: labels, ports: [{ port: 80, targetPort: 80 }] },
    },
    ingress,
  ]);
}

/** Traefik as a DaemonSet on the host network of every node: port 80 of each node IP. */
export function renderIngress(profile: InstallProfile): string {
  const name = 'traefik-ingress';
  const namespace = 'kube-system';
  const labels = { app: name };
  const v1 = profile.traefikMajor === 1;
  const rules = [
    {
      apiGroups: [''],
      resources: ['services', 'endpoints', 'secrets'],
      verbs: ['get', 'list', 'watch'],
    },
    {
      apiGroups: ['extensions', 'networking.k8s.io'],
      resources: ['ingresses', 'ingressclasses'],
      verbs: ['get', 'list', 'watch'],
    },
    {
      apiGroups: ['extensions', 'networking.k8s.io'],
      resources: ['ingresses/status'],
      verbs: ['update'],
    },
  ];
  const args = v1
    ? ['--kubernetes', '--entrypoints=Name:http Address::80', '--defaultentrypoints=http', '--ping']
    : [
        '--entrypoints.web.address=:80',
        '--providers.kubernetesingress=true',
        '--ping=true',
        '--log.level=INFO',
      ];
  return documents([
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name, namespace },
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: `klab:${name}` },
      rules,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: `klab:${name}` },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `klab:${name}` },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
    ...(v1
      ? []
      : [
          {
            apiVersion: 'networking.k8s.io/v1',
            kind: 'IngressClass',
            metadata: { name: 'traefik' },
            spec: { controller: 'traefik.io/ingress-controller' },
          },
        ]),
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name, namespace, labels },
      spec: {
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: name,
            hostNetwork: true,
            terminationGracePeriodSeconds: 10,
            containers: [
              {
                name: 'traefik',
                image: profile.ingressImage.image,
                imagePullPolicy: 'Never',
                args,
                ports: [{ name: 'http', containerPort: 80, hostPort: 80 }],
                readinessProbe: httpProbe('/ping', 8080),
              },
            ],
          },
        },
      },
    },
  ]);
}

export const CLUSTER_DNS = 'coredns';
/** The Service keeps kube-dns's name: pods and tools look for it by that name. */
export const CLUSTER_DNS_SERVICE = 'kube-dns';

/**
 * The Corefile: answer for the cluster domain from the API (Services, Endpoints, pods by
 * IP), everything else to the node's resolvers. CoreDNS 1.1.3 (kubeadm's for 1.11) has
 * `proxy` and needs `upstream` to resolve CNAMEs outside; 1.10 has `forward`, `ready` for
 * its readiness probe and `loop`, which stops a resolver that points back at itself.
 */
export function corefile(spec: LabSpec, profile: InstallProfile): string {
  const domain = spec.network.clusterDomain;
  const lines =
    profile.coreDnsMinor === 1
      ? [
          '.:53 {',
          '    errors',
          '    health',
          `    kubernetes ${domain} in-addr.arpa ip6.arpa {`,
          '        pods insecure',
          '        upstream',
          '        fallthrough in-addr.arpa ip6.arpa',
          '    }',
          '    prometheus :9153',
          '    proxy . /etc/resolv.conf',
          '    cache 30',
          '    reload',
          '}',
        ]
      : [
          '.:53 {',
          '    errors',
          '    health {',
          '        lameduck 5s',
          '    }',
          '    ready',
          `    kubernetes ${domain} in-addr.arpa ip6.arpa {`,
          '        pods insecure',
          '        fallthrough in-addr.arpa ip6.arpa',
          '        ttl 30',
          '    }',
          '    prometheus :9153',
          '    forward . /etc/resolv.conf',
          '    cache 30',
          '    loop',
          '    reload',
          '    loadbalance',
          '}',
        ];
  return `${lines.join('\n')}\n`;
}

/**
 * CoreDNS as the cluster DNS add-on: its own ServiceAccount with read access to what it
 * serves, the Corefile in a ConfigMap, one replica (a lab), and the kube-dns Service at the
 * address every kubelet writes into pods' resolv.conf. It uses the node's resolvers
 * (dnsPolicy Default), never itself.
 */
export function renderClusterDns(spec: LabSpec, profile: InstallProfile): string {
  const namespace = 'kube-system';
  const labels = { 'k8s-app': 'kube-dns' };
  const v1 = profile.coreDnsMinor === 1;
  const rules = [
    {
      apiGroups: [''],
      resources: ['endpoints', 'services', 'pods', 'namespaces'],
      verbs: ['list', 'watch'],
    },
    ...(v1
      ? [{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }]
      : [
          {
            apiGroups: ['discovery.k8s.io'],
            resources: ['endpointslices'],
            verbs: ['list', 'watch'],
          },
        ]),
  ];
  // Generous under software emulation: a late answer must not restart the only DNS server.
  return documents([
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: CLUSTER_DNS, namespace } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'system:coredns', labels: { 'app.kubernetes.io/managed-by': 'klab' } },
      rules,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'system:coredns', labels: { 'app.kubernetes.io/managed-by': 'klab' } },
      roleRef: {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: 'system:coredns',
      },
      subjects: [{ kind: 'ServiceAccount', name: CLUSTER_DNS, namespace }],
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: CLUSTER_DNS, namespace },
      data: { Corefile: corefile(spec, profile) },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: CLUSTER_DNS, namespace, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: CLUSTER_DNS,
            dnsPolicy: 'Default',
            containers: [
              {
                name: CLUSTER_DNS,
                image: profile.dnsImage.image,
                imagePullPolicy: 'Never',
                args: ['-conf', '/etc/coredns/Corefile'],
                volumeMounts: [{ name: 'config', mountPath: '/etc/coredns', readOnly: true }],
                ports: [
                  { name: 'dns', containerPort: 53, protocol: 'UDP' },
                  { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
                  { name: 'metrics', containerPort: 9153, protocol: 'TCP' },
                ],
                resources: {
                  requests: { cpu: '50m', memory: '70Mi' },
                  limits: { memory: '170Mi' },
                },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  capabilities: { add: ['NET_BIND_SERVICE'], drop: ['all'] },
                  readOnlyRootFilesystem: true,
                },
                livenessProbe: httpProbe('/health', 8080, 60),
                readinessProbe: v1 ? httpProbe('/health', 8080, 5) : httpProbe('/ready', 8181, 5),
              },
            ],
            volumes: [
              {
                name: 'config',
                configMap: { name: CLUSTER_DNS, items: [{ key: 'Corefile', path: 'Corefile' }] },
              },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: CLUSTER_DNS_SERVICE,
        namespace,
        labels: { ...labels, 'kubernetes.io/name': 'CoreDNS' },
      },
      spec: {
        selector: labels,
        clusterIP: clusterDnsIp(spec),
        ports: [
          { name: 'dns', port: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, protocol: 'TCP' },
          { name: 'metrics', port: 9153, protocol: 'TCP' },
        ],
      },
    },
  ]);
}
