/** Kubeconfig files: pure rendering with every certificate embedded (files travel as one). */
import YAML from 'yaml';

export interface KubeconfigInput {
  clusterName: string;
  server: string;
  caPem: string;
  user: string;
  auth: { certPem: string; keyPem: string } | { token: string };
}

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

export function renderKubeconfig(input: KubeconfigInput): string {
  const user =
    'token' in input.auth
      ? { token: input.auth.token }
      : {
          'client-certificate-data': b64(input.auth.certPem),
          'client-key-data': b64(input.auth.keyPem),
        };
  return YAML.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: input.clusterName,
          cluster: { server: input.server, 'certificate-authority-data': b64(input.caPem) },
        },
      ],
      users: [{ name: input.user, user }],
      contexts: [{ name: 'default', context: { cluster: input.clusterName, user: input.user } }],
      'current-context': 'default',
      preferences: {},
    },
    { lineWidth: 0 },
  );
}
