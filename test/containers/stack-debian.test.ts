/**
 * The mirror-only stack, built for real (Debian mirror + Go module proxy only): every
 * binary runs and reports its version, the images load into Docker, the test app
 * serves its PHP page. Builds are cached by their inputs, so reruns take seconds.
 */
import { Resolver } from 'node:dns/promises';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSpecText } from '../../src/model/spec-file.js';
import { corefile } from '../../src/render/manifests.js';
import { artifactPath } from '../../src/stacks/cache.js';
import { loadStack } from '../../src/stacks/index.js';
import { installProfile } from '../../src/stacks/install.js';
import { pullImage } from '../../src/stacks/registry.js';
import { klab, ok } from '../helpers/cli.js';
import { startFakeRegistry } from '../helpers/fake-registry.js';

const stack = loadStack('debian');
const file = (id: string) => {
  const artifact = stack.artifacts.find((a) => a.id === id);
  if (!artifact) throw new Error(`no artifact ${id}`);
  return artifactPath(artifact);
};

let lab: string;
let work: string;
let firstBuild: string;
const containers: string[] = [];

async function run(argv: string[], cwd?: string): Promise<string> {
  const result = await execa(argv[0] ?? '', argv.slice(1), { cwd, all: true, reject: false });
  if (result.exitCode !== 0)
    throw new Error(`${argv.join(' ')} failed:\n${String(result.all).slice(-2000)}`);
  return String(result.all);
}

beforeAll(async () => {
  lab = await mkdtemp(path.join(os.tmpdir(), 'klab-stack-'));
  work = await mkdtemp(path.join(os.tmpdir(), 'klab-stack-work-'));
  await writeFile(path.join(lab, 'klab.yaml'), 'stack: debian\nbox: klab/debian-12\n');
  firstBuild = ok(await klab(['artifacts', 'build', '--stack', 'debian'], lab)).stdout;
  await run(['tar', '-xzf', file('kubernetes'), '-C', work]);
  await run(['tar', '-xzf', file('flannel'), '-C', work]);
  await run(['tar', '-xzf', file('traefik'), '-C', work]);
  await run(['tar', '-xzf', file('coredns'), '-C', work]);
  await run(['mkdir', '-p', `${work}/etcd-debs`, `${work}/etcd-root`]);
  await run(['tar', '-xf', file('etcd'), '-C', `${work}/etcd-debs`]);
  for (const deb of (await readdir(`${work}/etcd-debs`)).filter((f) =>
    /^etcd-(server|client)_/.test(f),
  )) {
    await run(['dpkg-deb', '-x', `${work}/etcd-debs/${deb}`, `${work}/etcd-root`]);
  }
});

afterAll(async () => {
  for (const id of containers) await execa('docker', ['rm', '-f', id], { reject: false });
});

describe('klab artifacts build --stack debian', () => {
  it('builds (or reuses) every artifact of the stack', () => {
    expect(firstBuild).toMatch(/debian stack: \d+ built .*\d+ reused from the cache\./);
  });

  it('kube-apiserver says v1.20.2, and every Kubernetes binary runs', async () => {
    expect((await run([`${work}/kubernetes/bin/kube-apiserver`, '--version'])).trim()).toBe(
      'Kubernetes v1.20.2',
    );
    for (const bin of ['kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy']) {
      expect(await run([`${work}/kubernetes/bin/${bin}`, '--version']), bin).toContain('v1.20.2');
    }
    expect(
      await run([`${work}/kubernetes/bin/kubectl`, 'version', '--client', '--short']),
    ).toContain('v1.20.2');
  });

  it('etcd and etcdctl from the Debian packages run and say 3.4.23', async () => {
    expect(await run([`${work}/etcd-root/usr/bin/etcd`, '--version'])).toMatch(
      /etcd Version: 3\.4\.23/,
    );
    expect(await run([`${work}/etcd-root/usr/bin/etcdctl`, 'version'])).toMatch(
      /etcdctl version: 3\.4\.23/,
    );
  });

  it('flanneld runs and reports its version; mk-docker-opts.sh comes with it', async () => {
    expect((await run([`${work}/flannel/flanneld`, '--version'])).trim()).toBe('v0.28.10');
    expect(await run(['bash', '-n', `${work}/flannel/mk-docker-opts.sh`])).toBe('');
  });

  it('carries docker.io 20.10.24 with containerd and runc, resolved against the box', async () => {
    const listing = await run(['tar', '-tf', file('docker')]);
    expect(listing).toMatch(/docker\.io_20\.10\.24/);
    expect(listing).toMatch(/containerd_/);
    expect(listing).toMatch(/runc_/);
  });

  it('its packages carry zstd data (quick to unpack on an emulated VM) that dpkg-deb reads', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-debs-'));
    await run(['tar', '-xf', file('docker'), '-C', dir]);
    const debs = (await readdir(dir)).filter((name) => name.endsWith('.deb'));
    expect(debs.length).toBeGreaterThanOrEqual(4);
    for (const deb of debs) {
      const members = (await run(['ar', 't', path.join(dir, deb)])).split('\n').filter(Boolean);
      expect(members, deb).toEqual(['debian-binary', 'control.tar.xz', 'data.tar.zst']);
      await run(['dpkg-deb', '--info', path.join(dir, deb)]);
    }
    const docker = debs.find((name) => name.startsWith('docker.io_')) ?? '';
    expect(await run(['dpkg-deb', '--contents', path.join(dir, docker)])).toMatch(
      /\.\/usr\/(s?bin)\/dockerd/,
    );
  });

  it('the pause image loads into Docker and runs', async () => {
    expect(await run(['docker', 'load', '-i', file('pause-image')])).toContain('klab/pause:klab-1');
    const id = (
      await run(['docker', 'run', '-d', '--network', 'none', 'klab/pause:klab-1'])
    ).trim();
    containers.push(id);
    expect((await run(['docker', 'inspect', '-f', '{{.State.Running}}', id])).trim()).toBe('true');
    await run(['docker', 'stop', '-t', '5', id]);
    expect((await run(['docker', 'inspect', '-f', '{{.State.ExitCode}}', id])).trim()).toBe('0');
  });

  it('the test-app image is small, loads from its gzip archive and serves its PHP page', async () => {
    const image = 'klab/php-apache:debian-12-slim';
    expect(await run(['docker', 'load', '-i', file('php-apache-image')])).toContain(image);
    // The bound: at most 60 MB unpacked (it was 358 MB with a whole Debian root).
    const bytes = Number(
      (await run(['docker', 'image', 'inspect', '-f', '{{.Size}}', image])).trim(),
    );
    expect(bytes).toBeGreaterThan(5_000_000);
    expect(bytes).toBeLessThanOrEqual(60_000_000);
    const id = (await run(['docker', 'run', '-d', '--hostname', 'php-test-pod', image])).trim();
    containers.push(id);
    const ip = (
      await run([
        'docker',
        'inspect',
        '-f',
        '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}',
        id,
      ])
    ).trim();
    let page = '';
    for (let i = 0; i < 30 && !page.includes('klab test app'); i += 1) {
      const result = await execa('curl', ['-sf', '--max-time', '3', `http://${ip}/`], {
        reject: false,
      });
      page = String(result.stdout);
      if (!page.includes('klab test app')) await new Promise((r) => setTimeout(r, 1000));
    }
    expect(page).toContain('klab test app');
    expect(page).toContain('served by: php-test-pod');
    expect(page).toMatch(/php: 8\.2\./);
  });

  it('Traefik runs and routes HTTP to the test app (the ingress check, on 127.0.0.1)', async () => {
    expect(await run([`${work}/traefik/traefik`, 'version'])).toMatch(/Version:\s+v2\.11\.10/);
    const app = containers.at(-1) ?? '';
    const ip = (
      await run([
        'docker',
        'inspect',
        '-f',
        '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}',
        app,
      ])
    ).trim();
    const dynamic = path.join(work, 'traefik-dynamic.yml');
    await writeFile(
      dynamic,
      `http:\n  routers:\n    app:\n      rule: "Host(\`php.klab.test\`)"\n      service: app\n  services:\n    app:\n      loadBalancer:\n        servers:\n          - url: "http://${ip}:80"\n`,
    );
    const traefik = execa(`${work}/traefik/traefik`, [
      '--entrypoints.web.address=127.0.0.1:18080',
      `--providers.file.filename=${dynamic}`,
      '--log.level=ERROR',
    ]);
    try {
      let page = '';
      for (let i = 0; i < 30 && !page.includes('klab test app'); i += 1) {
        const r = await execa(
          'curl',
          ['-s', '--max-time', '3', '-H', 'Host: php.klab.test', 'http://127.0.0.1:18080/'],
          { reject: false },
        );
        page = String(r.stdout);
        if (!page.includes('klab test app'))
          await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      expect(page).toContain('served by: php-test-pod');
    } finally {
      traefik.kill('SIGTERM');
      await traefik.catch(() => undefined);
    }
  });

  it("CoreDNS has every plugin of the lab's Corefile, and runs as the image the images step makes", async () => {
    expect(await run([`${work}/coredns/coredns`, '-version'])).toContain('CoreDNS-1.10.1');
    const plugins = await run([`${work}/coredns/coredns`, '-plugins']);
    const spec = parseSpecText('', 'lab', 'klab.yaml');
    const corefileText = corefile(spec, installProfile('debian'));
    // The plugin names of the Corefile: the first word of each line in the server block.
    const used = [...corefileText.matchAll(/^ {4}([a-z]+)\b/gm)].map((match) => match[1]);
    expect(used).toContain('kubernetes');
    for (const name of used) expect(plugins, name).toContain(`dns.${name}`);
    // As the images step does it: the archive imported with the binary as entrypoint.
    const image = installProfile('debian').dnsImage;
    if (image.from === 'docker-archive') throw new Error('expected a binary image');
    await execa(
      'docker',
      ['import', '--change', `ENTRYPOINT ["${image.from.entrypoint}"]`, '-', image.image],
      {
        inputFile: file('coredns'),
      },
    );
    const conf = path.join(work, 'Corefile');
    await writeFile(
      conf,
      '.:53 {\n    errors\n    health\n    ready\n    forward . 127.0.0.1:1\n}\n',
    );
    const id = (
      await run([
        'docker',
        'run',
        '-d',
        '-v',
        `${conf}:/etc/coredns/Corefile:ro`,
        image.image,
        '-conf',
        '/etc/coredns/Corefile',
      ])
    ).trim();
    containers.push(id);
    const ip = (
      await run([
        'docker',
        'inspect',
        '-f',
        '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}',
        id,
      ])
    ).trim();
    let health = '';
    let ready = '';
    for (let i = 0; i < 30 && !(health === 'OK' && ready === 'OK'); i += 1) {
      health = String(
        (
          await execa('curl', ['-s', '--max-time', '3', `http://${ip}:8080/health`], {
            reject: false,
          })
        ).stdout,
      );
      ready = String(
        (
          await execa('curl', ['-s', '--max-time', '3', `http://${ip}:8181/ready`], {
            reject: false,
          })
        ).stdout,
      );
      if (health !== 'OK' || ready !== 'OK') await new Promise((r) => setTimeout(r, 1000));
    }
    expect(health).toBe('OK');
    expect(ready).toBe('OK');
    // It answers DNS on port 53 (here SERVFAIL: its only upstream is nowhere), not silence.
    const resolver = new Resolver({ timeout: 3000, tries: 2 });
    resolver.setServers([ip]);
    const error = await resolver
      .resolve4('example.klab.test')
      .catch((e: NodeJS.ErrnoException) => e);
    expect((error as NodeJS.ErrnoException).code).toMatch(/^E(SERVFAIL|REFUSED|NOTFOUND)$/);
  });

  it('an image pulled from a registry API (no Docker on the host side) loads and runs', async () => {
    // Serve klab's own pause image through a fake registry on 127.0.0.1, as a registry would.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'klab-reg-'));
    await run(['tar', '-xf', file('pause-image'), '-C', dir]);
    const [entry] = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
    const config = await readFile(path.join(dir, entry.Config));
    const layer = gzipSync(await readFile(path.join(dir, entry.Layers[0])));
    const registry = await startFakeRegistry([
      { repository: 'library/klab-pause', tag: 'pulled', config, layers: [layer] },
    ]);
    try {
      const out = path.join(dir, 'pulled.tar');
      await pullImage('registry-1.docker.io/library/klab-pause:pulled', {
        out,
        work: dir,
        baseUrl: registry.base,
      });
      expect(await run(['docker', 'load', '-i', out])).toContain('klab-pause:pulled');
      const id = (
        await run(['docker', 'run', '-d', '--network', 'none', 'klab-pause:pulled'])
      ).trim();
      containers.push(id);
      expect((await run(['docker', 'inspect', '-f', '{{.State.Running}}', id])).trim()).toBe(
        'true',
      );
    } finally {
      await registry.close();
    }
  });

  it('a second build reuses everything, and list/verify show the cache verified', async () => {
    const again = ok(await klab(['artifacts', 'build', '--stack', 'debian'], lab)).stdout;
    // Every artifact of the stack (the box, Kubernetes, ..., CoreDNS, the images).
    expect(again).toContain(
      `debian stack: 0 built (none), ${stack.artifacts.length} reused from the cache.`,
    );
    const list = ok(await klab(['artifacts', 'list', '--stack', 'debian'], lab)).stdout;
    for (const artifact of stack.artifacts) {
      expect(list).toMatch(new RegExp(`^${artifact.id}\\s.*pinned \\(lock\\)\\s+yes\\s+yes$`, 'm'));
    }
    ok(await klab(['artifacts', 'verify', '--stack', 'debian'], lab));
  });
});
