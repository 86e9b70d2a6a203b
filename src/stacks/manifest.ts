/**
 * Stack manifests: every artifact a stack installs, where it comes from, how it is
 * verified and where it goes in the lab. Manifests are data (./v1.11.1.ts, ./debian.ts),
 * validated by this schema when loaded.
 */
import { z } from 'zod';

/** Where downloads come from; each base can be replaced by a mirror (klab.yaml mirrors.*). */
export const SOURCE_BASES = {
  k8s: 'https://dl.k8s.io',
  github: 'https://github.com',
  docker: 'https://download.docker.com',
} as const;
export type SourceBase = keyof typeof SOURCE_BASES;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, { error: 'must be 64 lower-case hex digits' });

const DownloadSource = z.strictObject({
  type: z.literal('download'),
  base: z.enum(Object.keys(SOURCE_BASES) as [SourceBase, ...SourceBase[]]),
  /** Path under the base URL (and under a mirror that copies its layout). */
  path: z.string().regex(/^[^/].*[^/]$/, { error: 'must be a relative path' }),
});

const ImageSource = z.strictObject({
  type: z.literal('image'),
  /** registry/repository:tag, e.g. registry.k8s.io/pause:3.1 */
  reference: z.string().regex(/^[a-z0-9.-]+(:\d+)?\/[a-z0-9._/-]+:[A-Za-z0-9._-]+$/),
});

const BuildSource = z.strictObject({
  type: z.literal('build'),
  /** What builds it, in words for `artifacts list`. */
  recipe: z.string().min(1),
});

export const ArtifactSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/),
  kind: z.enum(['archive', 'binary', 'image', 'deb', 'box']),
  version: z.string().min(1),
  description: z.string().min(1),
  /** File name in the cache (and in an offline bundle). */
  file: z.string().regex(/^[A-Za-z0-9._+-]+$/),
  source: z.discriminatedUnion('type', [DownloadSource, ImageSource, BuildSource]),
  /** The official checksum; without one the first verified download is pinned in klab.lock.json. */
  sha256: sha256.optional(),
  /** Where the pin comes from (or why there is none). */
  checksumSource: z.string().min(1),
  install: z.strictObject({
    on: z.enum(['all', 'masters', 'nodes']),
    /** What the provisioner does with it, for the docs. */
    to: z.string().min(1),
  }),
});

export const StackSchema = z
  .strictObject({
    name: z.enum(['v1.11.1', 'debian']),
    title: z.string(),
    versions: z.strictObject({
      kubernetes: z.string(),
      etcd: z.string(),
      flannel: z.string(),
      docker: z.string(),
    }),
    /** How this stack differs from the tutorial's, and what that changes for a learner. */
    differences: z.array(z.string()),
    artifacts: z.array(ArtifactSchema).min(1),
  })
  .superRefine((stack, ctx) => {
    const seen = new Set<string>();
    stack.artifacts.forEach((artifact, index) => {
      if (seen.has(artifact.id)) {
        ctx.addIssue({
          code: 'custom',
          path: ['artifacts', index, 'id'],
          message: `duplicate id ${artifact.id}`,
        });
      }
      seen.add(artifact.id);
    });
  });

export type Artifact = z.output<typeof ArtifactSchema>;
export type Stack = z.output<typeof StackSchema>;
export type StackInput = z.input<typeof StackSchema>;

type ArtifactInput = z.input<typeof ArtifactSchema>;
type Placement = ArtifactInput['install']['on'];

/** An artifact klab builds itself from pinned sources (the mirror-only stack). */
export function built(a: {
  id: string;
  kind: ArtifactInput['kind'];
  version: string;
  description: string;
  file: string;
  /** What builds it, in words. */
  recipe: string;
  on: Placement;
  to: string;
}): ArtifactInput {
  return {
    id: a.id,
    kind: a.kind,
    version: a.version,
    description: a.description,
    file: a.file,
    source: { type: 'build', recipe: a.recipe },
    checksumSource: 'built locally from pinned sources; pinned on the first build (klab.lock.json)',
    install: { on: a.on, to: a.to },
  };
}

/** An image pulled from a registry; pinned on its first verified download. */
export function registryImage(a: {
  id: string;
  version: string;
  description: string;
  file: string;
  reference: string;
  on: Placement;
  to: string;
}): ArtifactInput {
  return {
    id: a.id,
    kind: 'image',
    version: a.version,
    description: a.description,
    file: a.file,
    source: { type: 'image', reference: a.reference },
    checksumSource:
      'none published that klab could verify: pinned on the first verified download (klab.lock.json)',
    install: { on: a.on, to: a.to },
  };
}
