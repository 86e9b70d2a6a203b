/** Every command klab has, in the order --help lists them. */
import { artifactsCommand } from './artifacts.js';
import { certsCommand } from './certs.js';
import type { KlabCommand } from './command.js';
import { etcdCommand } from './etcd.js';
import { boxCommand, doctorCommand } from './host.js';
import {
  createCommand,
  destroyCommand,
  haltCommand,
  initCommand,
  sshCommand,
  statusCommand,
  upCommand,
} from './lab.js';
import { lessonCommand } from './lesson.js';
import { nodeCommand } from './node.js';
import { resetCommand, snapshotCommand } from './snapshot.js';
import { uiCommand } from './ui.js';
import { verifyCommand } from './verify.js';

export const COMMANDS: readonly KlabCommand[] = [
  initCommand,
  createCommand,
  statusCommand,
  sshCommand,
  haltCommand,
  upCommand,
  destroyCommand,
  verifyCommand,
  snapshotCommand,
  resetCommand,
  lessonCommand,
  uiCommand,
  doctorCommand,
  boxCommand,
  certsCommand,
  etcdCommand,
  nodeCommand,
  artifactsCommand,
];
