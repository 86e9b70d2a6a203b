/**
 * The certificate a TLS server presents, read from the host: what a client sees, whatever
 * files the server's disk holds. No verification (that is the point: a wrong certificate
 * must be seen, not refused) and no client certificate (servers that want one still show
 * theirs before they ask).
 */
import tls from 'node:tls';

export interface ServedCertificate {
  /** Hex, upper case, no leading zeros. */
  serial: string;
  validTo: Date;
  subject: string;
}

/** Upper-case hex without leading zeros: how two tools' serials are compared. */
export function normalSerial(serial: string): string {
  return serial
    .replace(/:/g, '')
    .toUpperCase()
    .replace(/^0+(?=.)/, '');
}

export function servedCertificate(
  host: string,
  port: number,
  timeoutMs = 5000,
): Promise<ServedCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, rejectUnauthorized: false, timeout: timeoutMs });
    const fail = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      if (!cert?.serialNumber) {
        reject(new Error(`${host}:${port} presented no certificate`));
        return;
      }
      resolve({
        serial: normalSerial(cert.serialNumber),
        validTo: new Date(cert.valid_to),
        subject: cert.subject?.CN ? `CN=${cert.subject.CN}` : '',
      });
    });
    socket.once('timeout', () =>
      fail(new Error(`${host}:${port}: no TLS answer within ${timeoutMs} ms`)),
    );
    socket.once('error', fail);
  });
}
