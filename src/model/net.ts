/** Small, pure IPv4 helpers for the lab's subnets. */

export interface Cidr {
  network: number;
  prefix: number;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIpv4(text: string): boolean {
  return IPV4.test(text);
}

export function ipToInt(ip: string): number {
  if (!isIpv4(ip)) throw new Error(`not an IPv4 address: ${ip}`);
  return ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function intToIp(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

export function parseCidr(text: string): Cidr | undefined {
  const match = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  if (!match?.[1] || !match[2] || !isIpv4(match[1])) return undefined;
  const prefix = Number(match[2]);
  if (prefix < 8 || prefix > 30) return undefined;
  const size = 2 ** (32 - prefix);
  const ip = ipToInt(match[1]);
  if (ip % size !== 0) return undefined;
  return { network: ip, prefix };
}

/** The network an interface address is on: 172.30.8.1, 24 -> 172.30.8.0/24 (/8../30). */
export function cidrOfAddress(ip: string, prefix: number): string | undefined {
  if (!isIpv4(ip) || !Number.isInteger(prefix) || prefix < 8 || prefix > 30) return undefined;
  const size = 2 ** (32 - prefix);
  return `${intToIp(Math.floor(ipToInt(ip) / size) * size)}/${prefix}`;
}

export function cidrSize(cidr: Cidr): number {
  return 2 ** (32 - cidr.prefix);
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  const value = ipToInt(ip);
  return value >= cidr.network && value < cidr.network + cidrSize(cidr);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.network < b.network + cidrSize(b) && b.network < a.network + cidrSize(a);
}

/** The n-th address of a subnet (1 is the gateway libvirt gives its bridge). */
export function hostAddress(cidr: Cidr, n: number): string {
  return intToIp(cidr.network + n);
}

export function netmask(cidr: Cidr): string {
  return intToIp(2 ** 32 - cidrSize(cidr));
}
