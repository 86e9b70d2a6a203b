/** klab ui [--port N] [--open] [--listen HOST]: the lab and its lessons in a local web page. */

import { languageFromEnv } from '../model/lesson.js';
import { serveUi } from '../ui/web/serve.js';
import type { KlabCommand } from './command.js';

export const uiCommand: KlabCommand = {
  command: 'ui',
  describe:
    'Serve the lab and its lessons as a web page on 127.0.0.1 (live checks, hints, verify, snapshots); Ctrl-C stops it',
  builder: (y) =>
    y
      .option('port', {
        type: 'number',
        default: 7411,
        describe: 'TCP port (0: any free port)',
      })
      .option('open', {
        type: 'boolean',
        default: false,
        describe: 'open the page in the desktop browser (xdg-open)',
      })
      .option('listen', {
        type: 'string',
        describe:
          'listen on this address instead of 127.0.0.1 (other machines can then reach the page; the token still guards it)',
      }),
  logsInLab: 'always',
  onInterrupt:
    'stopping klab ui (a running action first reaches its safe point; press Ctrl-C again to stop at once).',
  async run(args, io) {
    await serveUi({
      dir: args.dir,
      sink: io.reporter,
      port: Number(args.port),
      open: args.open === true,
      ...(typeof args.listen === 'string' ? { listen: args.listen } : {}),
      defaultLang: languageFromEnv(process.env),
    });
    return 0;
  },
};
