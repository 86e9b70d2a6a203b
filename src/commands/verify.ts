/** klab verify: the cluster checks (etcd, control plane, nodes, test app, ingress). */
import { verifyLab } from '../app/verify.js';
import type { KlabCommand } from './command.js';

export const verifyCommand: KlabCommand = {
  command: 'verify',
  describe:
    'Check the cluster: etcd, control plane, nodes, the PHP test app by pod IP and ClusterIP, Traefik ingress on every node',
  builder: (y) => y,
  logsInLab: 'always',
  async run(args, io) {
    await verifyLab({ dir: args.dir, sink: io.reporter });
    return 0;
  },
};
