/** Puts a fetch-style web application (klab ui's Hono app) on a TCP port. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { KlabError } from '../model/errors.js';

export interface ListeningServer {
  host: string;
  port: number;
  close(): Promise<void>;
}

export function listenHttp(
  fetch: (request: Request) => Response | Promise<Response>,
  host: string,
  port: number,
): Promise<ListeningServer> {
  const server = createServer(getRequestListener(fetch));
  // Actions (a lesson start, verify) run for minutes while the page waits on its event
  // stream: no request timeout; keep-alive sockets are closed on shutdown below.
  server.requestTimeout = 0;
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        new KlabError(
          'KLAB_USAGE',
          error.code === 'EADDRINUSE'
            ? `port ${port} on ${host} is in use`
            : `cannot listen on ${host}:${port}: ${error.message}`,
          { hint: 'Pick another port with --port N (0: any free port).' },
        ),
      );
    });
    server.listen(port, host, () => {
      const address = server.address() as AddressInfo;
      resolve({
        host,
        port: address.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
