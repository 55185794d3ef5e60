// `npm run demo:k8s [-- --attack NAME|none] [--rounds N] [--window SECONDS] [--out DIR]`
//
// The end-to-end test, for a person: three owners' clusters on this machine (real API servers
// with kube-controller-manager, a test kubelet each as the node: test/e2e/, docs/e2e.md), the
// Concord chart installed in each with helm, a TrainingRun each and Peers exchanged as people
// would (public key from the run's status, address from the federation Service), mallory's
// coordinator image attacking. Shows each cluster's phase, round and loss live from the
// TrainingRun status, and ends with a report under out/demo-k8s/ (report.md, loss.svg,
// summary.json) built only from what Kubernetes shows. Needs root (the test kubelet mounts pods'
// volumes in mount namespaces).
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Peer, TrainingRun } from '../operator/src/api/types.js';
import { lineChart } from '../trainer/src/report/line-chart.js';
import { formatDuration, ProgressLine } from '../trainer/src/report/progress.js';
import { applyRun, e2eRunSpec, getPeer, getRun, introduce, startOwner, type Owner } from '../test/e2e/owner.js';
import { ATTACKS, isAttack } from './attacks.js';

const { values } = parseArgs({
  options: {
    attack: { type: 'string', default: 'equivocate' }, rounds: { type: 'string', default: '16' }, window: { type: 'string', default: '10' },
    out: { type: 'string', default: 'out/demo-k8s' }, timeout: { type: 'string', default: '900' },
  },
});
const attack = values.attack!;
if (attack !== 'none' && !isAttack(attack)) throw new Error(`--attack must be none or one of ${ATTACKS.join(', ')}`);
const rounds = Number(values.rounds);
const windowSeconds = Number(values.window);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
if (!Number.isInteger(windowSeconds) || windowSeconds < 2) throw new Error('--window must be an integer of at least 2 seconds');
const out = resolve(values.out!);
const RUN = 'gpt';
const started = Date.now();
const elapsed = () => formatDuration((Date.now() - started) / 1000);
const say = (text: string) => process.stdout.write(`${text}\n`);
const live = new ProgressLine(process.stderr, 5_000);

const owners: Owner[] = [];
try {
  say(`Concord on Kubernetes: three owners' clusters on this machine${attack === 'none' ? '' : `, mallory's coordinator attacks (${attack})`}, ${rounds} rounds of ${windowSeconds} s`);
  live.update(`${elapsed()}  starting three API servers, kubelets and helm installs…`);
  owners.push(...await Promise.all([
    startOwner('alpha', 41), startOwner('beta', 42), startOwner('mallory', 43, attack === 'none' ? {} : { attack }),
  ]));
  live.done();
  say(`${elapsed()}  three clusters up, the chart installed in each (helm), the operator running as a pod`);
  for (const o of owners) await applyRun(o, RUN, e2eRunSpec({ rounds, windowSeconds }));
  say(`${elapsed()}  each owner applied TrainingRun "${RUN}"; exchanging public keys and addresses as Peers…`);
  await introduce(owners, RUN);
  for (const o of owners) {
    const run = await getRun(o, RUN);
    say(`  ${o.name.padEnd(8)} public key ${run.status?.identity?.publicKey}  peer id ${run.status?.identity?.peerId?.slice(0, 12)}…`);
  }

  // Live: phase, round of rounds and loss of every run, from its status.
  const curves = new Map<string, Array<[number, number]>>(owners.map((o) => [o.name, []]));
  const honest = owners.filter((o) => attack === 'none' || o.name !== 'mallory');
  const deadline = Date.now() + Number(values.timeout) * 1000;
  for (;;) {
    const runs = await Promise.all(owners.map(async (o) => [o, await getRun(o, RUN)] as const));
    for (const [o, run] of runs) {
      const curve = curves.get(o.name)!;
      const round = run.status?.round ?? 0;
      if (run.status?.loss !== undefined && round > 0 && curve.at(-1)?.[0] !== round) curve.push([round, run.status.loss]);
    }
    live.update(`${elapsed()}  ${runs.map(([o, run]) => `${o.name} ${run.status?.phase ?? '…'} ${run.status?.progress ?? ''} ${run.status?.loss?.toFixed(3) ?? '—'} peers ${run.status?.peers?.summary ?? ''}`).join(' | ')}`);
    if (runs.filter(([o]) => honest.includes(o)).every(([, run]) => run.status?.phase === 'Succeeded')) break;
    if (Date.now() > deadline) throw new Error(`the honest runs did not finish within ${values.timeout} s`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  live.done();

  // The report: only what the Kubernetes objects say.
  await mkdir(out, { recursive: true });
  const runs = new Map<string, TrainingRun>();
  const peers = new Map<string, Peer[]>();
  const warnings = new Map<string, CoreV1Event[]>();
  for (const o of owners) {
    runs.set(o.name, await getRun(o, RUN));
    peers.set(o.name, await Promise.all(owners.filter((p) => p !== o).map((p) => getPeer(o, p.name))));
    warnings.set(o.name, ((await o.cluster.core.listNamespacedEvent({ namespace: 'default' })).items as CoreV1Event[]).filter((e) => e.type === 'Warning'));
  }
  const hashes = new Set(honest.map((o) => runs.get(o.name)!.status?.modelHash));
  const agreed = hashes.size === 1 && !hashes.has(undefined);
  await writeFile(join(out, 'loss.svg'), lineChart({
    title: 'Training loss by round (TrainingRun status)', xLabel: 'round', yLabel: 'loss (nats/token)',
    series: owners.map((o) => ({ name: o.name, points: curves.get(o.name)!, dashed: !honest.includes(o) })),
  }));
  const md = [
    '# Concord on Kubernetes: three owners', '',
    `${owners.length} clusters (real API servers, the chart installed with helm, a test kubelet each); ${attack === 'none' ? 'no attack' : `mallory attacks: ${attack}`}; ${rounds} rounds of ${windowSeconds} s; ${elapsed()}.`, '',
    `**Honest clusters hold the same model: ${agreed ? 'yes' : 'NO'}** (${[...hashes].join(', ')})`, '',
    '![loss](loss.svg)', '',
    '| owner | phase | round | loss | model hash | Ready | Federated | Degraded |', '|---|---|---|---|---|---|---|---|',
    ...owners.map((o) => {
      const s = runs.get(o.name)!.status ?? {};
      const c = (t: string) => { const x = s.conditions?.find((k) => k.type === t); return x ? `${x.status} (${x.reason})` : '—'; };
      return `| ${o.name} | ${s.phase ?? '—'} | ${s.progress ?? '—'} | ${s.loss?.toFixed(3) ?? '—'} | \`${s.modelHash?.slice(0, 16) ?? '—'}…\` | ${c('Ready')} | ${c('Federated')} | ${c('Degraded')} |`;
    }), '',
    '## Peers, as each owner\'s cluster sees them', '',
    '| owner | peer | Reachable | Verified | reputation | accepted | rejected (by reason) | banned |', '|---|---|---|---|---|---|---|---|',
    ...owners.flatMap((o) => peers.get(o.name)!.map((p) => {
      const c = (t: string) => { const x = p.status?.conditions?.find((k) => k.type === t); return x ? `${x.status} (${x.reason})` : '—'; };
      return `| ${o.name} | ${p.metadata.name} | ${c('Reachable')} | ${c('Verified')} | ${p.status?.reputation ?? '—'} | ${p.status?.accepted ?? 0} | ${p.status?.rejected ?? 0} ${JSON.stringify(p.status?.rejectedByReason ?? {})} | ${p.status?.banned ? `round ${p.status.banned.round}: ${p.status.banned.reason}` : '—'} |`;
    })), '',
    ...owners.flatMap((o) => peers.get(o.name)!.filter((p) => p.status?.banned?.evidence).map((p) => `Evidence held by ${o.name} against ${p.metadata.name} (two signed headers, base64):\n\n\`\`\`\n${p.status!.banned!.evidence}\n\`\`\`\n`)),
    '## Warning events', '',
    ...owners.flatMap((o) => warnings.get(o.name)!.map((e) => `- ${o.name}: ${e.involvedObject.kind}/${e.involvedObject.name} ${e.reason}: ${e.message}`)),
  ].join('\n');
  await writeFile(join(out, 'report.md'), `${md}\n`);
  await writeFile(join(out, 'summary.json'), JSON.stringify({ attack, rounds, agreed, runs: Object.fromEntries(runs), peers: Object.fromEntries(peers) }, null, 2));
  say(`${elapsed()}  honest clusters agree on the model: ${agreed ? 'yes' : 'NO'}`);
  for (const o of owners) for (const p of peers.get(o.name)!.filter((x) => x.status?.banned)) say(`  ${o.name} banned ${p.metadata.name} in round ${p.status!.banned!.round} (${p.status!.banned!.reason}), evidence kept in its Peer status`);
  say(`report: ${join(out, 'report.md')}`);
  process.exitCode = agreed ? 0 : 1;
} finally {
  live.done();
  say('stopping the clusters…');
  await Promise.all(owners.map((o) => o.stop()));
}
