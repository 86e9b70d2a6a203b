/** YAML files klab installs: a typed object through the yaml package, a comment on top. */
import YAML from 'yaml';

export function yamlFile(header: string, value: unknown): string {
  const doc = new YAML.Document(value);
  doc.commentBefore = ` ${header}`;
  return doc.toString({ lineWidth: 0 });
}
