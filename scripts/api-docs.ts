// docs/api.md from crds/: every field of TrainingRun and Peer with its type, default, bounds and
// description, generated so that the reference cannot drift from the schema.
//   npm run docs:api            writes docs/api.md
//   test/unit/api-docs.test.ts  fails when docs/api.md is stale
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { PROJECT_ROOT } from './project-root.js';

/** The parts of a CRD's OpenAPI v3 schema that the docs and the tests read. */
export interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  default?: unknown;
  required?: string[];
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  format?: string;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-validations'?: Array<{ rule: string; message: string }>;
}

interface Crd {
  spec: { names: { kind: string }; versions: Array<{ name: string; schema: { openAPIV3Schema: Schema }; additionalPrinterColumns?: Array<{ name: string; jsonPath: string }> }> };
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function typeOf(s: Schema): string {
  if (s['x-kubernetes-int-or-string']) return 'int or string';
  if (s.type === 'array') return `[]${s.items ? typeOf(s.items) : 'any'}`;
  if (s.type === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object') return `map[string]${typeOf(s.additionalProperties)}`;
  return s.type ?? 'any';
}

function rules(s: Schema, required: boolean): string {
  const parts: string[] = [];
  if (required) parts.push('**required**');
  if (s.default !== undefined && !(typeof s.default === 'object' && Object.keys(s.default as object).length === 0)) parts.push(`default \`${JSON.stringify(s.default)}\``);
  if (s.enum) parts.push(`one of ${s.enum.map((e) => `\`${String(e)}\``).join(', ')}`);
  if (s.minimum !== undefined) parts.push(`${s.exclusiveMinimum ? '>' : '≥'} ${s.minimum}`);
  if (s.maximum !== undefined) parts.push(`${s.exclusiveMaximum ? '<' : '≤'} ${s.maximum}`);
  if (s.minLength !== undefined) parts.push(`length ≥ ${s.minLength}`);
  if (s.maxLength !== undefined) parts.push(`length ≤ ${s.maxLength}`);
  if (s.minItems !== undefined) parts.push(`items ≥ ${s.minItems}`);
  if (s.maxItems !== undefined) parts.push(`items ≤ ${s.maxItems}`);
  if (s.pattern !== undefined) parts.push(`pattern \`${s.pattern}\``);
  for (const v of s['x-kubernetes-validations'] ?? []) parts.push(`rule: ${v.message}`);
  return parts.join('; ');
}

function rows(s: Schema, path: string, required: boolean, out: string[]): void {
  out.push(`| \`${path}\` | ${cell(typeOf(s))} | ${cell(rules(s, required))} | ${cell(s.description ?? '')} |`);
  const child = s.type === 'array' ? s.items : s;
  const suffix = s.type === 'array' ? '[]' : '';
  for (const [key, property] of Object.entries(child?.properties ?? {})) rows(property, `${path}${suffix}.${key}`, child?.required?.includes(key) ?? false, out);
}

export function apiDocs(root: string): string {
  const lines = [
    '# API reference (concord.dev/v1alpha1)',
    '',
    'Generated from `crds/` by `npm run docs:api`; do not edit. How the operator acts on these',
    'fields: [operator.md](operator.md).',
  ];
  for (const file of ['concord.dev_trainingruns.yaml', 'concord.dev_peers.yaml']) {
    const crd = parse(readFileSync(join(root, 'crds', file), 'utf8')) as Crd;
    const version = crd.spec.versions[0]!;
    const schema = version.schema.openAPIV3Schema;
    lines.push('', `## ${crd.spec.names.kind}`, '', schema.description ?? '', '');
    lines.push(`\`kubectl get\` columns: ${(version.additionalPrinterColumns ?? []).map((c) => `${c.name} (\`${c.jsonPath}\`)`).join(', ')}.`, '');
    for (const part of ['spec', 'status'] as const) {
      const out: string[] = [];
      for (const [key, property] of Object.entries(schema.properties![part]!.properties ?? {})) rows(property, `${part}.${key}`, schema.properties![part]!.required?.includes(key) ?? false, out);
      lines.push(`### ${part}`, '', '| field | type | rules | description |', '|---|---|---|---|', ...out, '');
    }
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(join(PROJECT_ROOT, 'docs/api.md'), apiDocs(PROJECT_ROOT));
  console.log('wrote docs/api.md');
}
