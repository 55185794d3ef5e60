// The end of a local federation (`npm start`, and each arm of `npm run study -- federation`): from
// what each cluster's coordinator logged, the report — Markdown with a loss-curve SVG, a JSON
// summary for tests, benchmarks and the study — and the closing lines on the terminal: whether the
// honest clusters agree on every round's model, the validation loss, bytes moved against
// uncompressed, what was applied and rejected and why, bans with their evidence. Separate from
// the launcher (launch.ts), which only starts processes and follows logs.
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { lineChart } from '../../trainer/src/report/line-chart.js';
import { formatDuration } from '../../trainer/src/report/progress.js';

/** One JSON log line of a coordinator, with the cluster's name added. */
export type LogLine = Record<string, unknown> & { event: string; name: string };
export interface RoundLine { wallSeconds: number; round: number; tokens: string; modelHash: string; agreed: boolean | null; resynced: boolean; loss: number; accepted: Array<{ peerId: string; weight: number; scorePpm: number }>; rejected: Array<{ peerId: string; reason: string; detail: string }>; payloadsReceived: number; payloadBytes: number; denseBytes: number; phaseSeconds: Record<string, number>; reputation: Record<string, number>; contributed?: boolean }
export interface ClusterState {
  name: string;
  honest: boolean;
  peerId: string;
  round: number;
  phase: string;
  loss: number;
  rounds: RoundLine[];
  finished: boolean;
  stopping: LogLine | undefined;
  /** The round a restarted coordinator resumed at. */
  resumedAt?: number;
  /** The round of the last local checkpoint the coordinator finished writing. */
  checkpointed?: number;
  /** How its coordinator process ended on its own before the run was over (a crash), if it did. */
  crashed?: string;
}

/** What the report says of the run itself. */
export interface RunShape {
  clusters: number;
  rounds: number;
  window: number;
  /** Who attacks and how, in words (`mallory attacking with \`noise\``), if anyone does. */
  attack: string | undefined;
}

export async function report(out: string, clusters: ClusterState[], opts: RunShape, validation: { initial: number; final: number }, nameOf: (peerId: string) => string, seconds: number) {
  const honest = clusters.filter((c) => c.honest);
  // A round's model hash at every honest cluster that ran the round (a killed one misses some).
  const hashesOf = (round: number) => new Set(honest.flatMap((c) => c.rounds.filter((r) => Number(r.round) === round).map((r) => r.modelHash)));
  const finalHashes = hashesOf(opts.rounds - 1);
  const complete = honest.every((c) => c.rounds.some((r) => Number(r.round) === opts.rounds - 1));
  const honestAgree = finalHashes.size === 1 && complete;
  const perRoundAgree = Array.from({ length: opts.rounds }, (_, r) => hashesOf(r).size === 1);
  const received = clusters.reduce((sum, c) => sum + c.rounds.reduce((s, r) => s + r.payloadBytes, 0), 0);
  const dense = clusters.reduce((sum, c) => sum + c.rounds.reduce((s, r) => s + r.payloadsReceived * r.denseBytes, 0), 0);
  // What the honest clusters decided about each peer, over the run.
  const verdicts = new Map<string, { applied: number; rejected: Map<string, number> }>();
  for (const c of honest) {
    for (const r of c.rounds) {
      for (const a of r.accepted) {
        const v = verdicts.get(nameOf(a.peerId)) ?? { applied: 0, rejected: new Map() };
        v.applied++;
        verdicts.set(nameOf(a.peerId), v);
      }
      for (const x of r.rejected) {
        const v = verdicts.get(nameOf(x.peerId)) ?? { applied: 0, rejected: new Map() };
        v.rejected.set(x.reason, (v.rejected.get(x.reason) ?? 0) + 1);
        verdicts.set(nameOf(x.peerId), v);
      }
    }
  }
  const bans = honest.flatMap((c) => ((c.stopping?.peers ?? []) as Array<{ peerId: string; ban?: { reason: string; detail: string; round: number; evidence: string[] } }>)
    .filter((p) => p.ban !== undefined).map((p) => ({ by: c.name, peer: nameOf(p.peerId), ...p.ban! })));

  const measures = measureRounds(clusters);
  const svg = lineChart({
    title: 'Training loss of each cluster, by outer round', xLabel: 'round', yLabel: 'loss (nats/token)',
    series: clusters.map((c) => ({ name: `${c.name}${c.honest ? '' : ' (attacker)'}`, points: c.rounds.filter((r) => Number.isFinite(r.loss)).map((r) => [Number(r.round), r.loss] as const), dashed: !c.honest })),
  });
  await writeFile(join(out, 'loss.svg'), svg);
  const lines = [
    `# Concord local federation`,
    '',
    `${opts.clusters} clusters, ${opts.rounds} rounds of ${opts.window} s${opts.attack ? `, ${opts.attack}` : ''}; ${formatDuration(seconds)} in all.`,
    '',
    `- Honest clusters hold the same model after every round: **${perRoundAgree.every(Boolean) ? 'yes' : `no (rounds ${perRoundAgree.flatMap((ok, r) => (ok ? [] : [r])).join(', ')})`}**; final model ${[...finalHashes][0]?.slice(0, 16)}…`,
    `- Validation loss: ${fmt(validation.initial)} at round 0 → **${fmt(validation.final)}** after round ${opts.rounds - 1}.`,
    `- Contribution bytes moved: ${mib(received)} compressed, against ${mib(dense)} as float32 (${(dense / Math.max(1, received)).toFixed(0)}× less).`,
    `- Honest work applied: ${workLine(measures)}.`,
    '',
    '![loss](loss.svg)',
    '',
    '## What the honest clusters decided, summed over rounds and clusters',
    '',
    '| peer | applied | rejected (reason × times) |',
    '| --- | ---: | --- |',
    ...[...verdicts.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([peer, v]) => `| ${peer} | ${v.applied} | ${[...v.rejected].map(([reason, n]) => `${reason} × ${n}`).join(', ') || '—'} |`),
    '',
    '## Bans',
    '',
    ...(bans.length === 0 ? ['None.'] : bans.map((b) => `- ${b.by} banned ${b.peer} in round ${b.round}: ${b.reason} — ${b.detail}. Evidence (two signed statements, base64 envelopes; check with verifyEquivocationEvidence): \`${b.evidence.map((e) => `${e.slice(0, 24)}…`).join('`, `')}\``)),
    '',
  ];
  await writeFile(join(out, 'report.md'), lines.join('\n'));
  const outcome = {
    clusters: Object.fromEntries(clusters.map((c) => [c.name, { honest: c.honest, peerId: c.peerId, resumedAt: c.resumedAt, crashed: c.crashed, memory: c.stopping?.memory, rounds: c.rounds.map((r) => ({ round: r.round, tokens: Number(r.tokens), wallSeconds: r.wallSeconds, phaseSeconds: r.phaseSeconds, payloadBytes: r.payloadBytes, modelHash: r.modelHash, agreed: r.agreed, loss: r.loss, accepted: r.accepted.map((a) => nameOf(a.peerId)), rejected: r.rejected.map((x) => ({ peer: nameOf(x.peerId), reason: x.reason, detail: x.detail })), reputation: Object.fromEntries(Object.entries(r.reputation ?? {}).map(([id, value]) => [nameOf(id), value])) })) }])),
    metrics: join(out, 'metrics'), honestAgree, perRoundAgree, complete, validation, bytes: { received, dense }, bans, report: join(out, 'report.md'),
    measures,
    verdicts: Object.fromEntries([...verdicts.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([peer, v]) => [peer, { applied: v.applied, rejected: Object.fromEntries(v.rejected) }])),
  };
  await writeFile(join(out, 'summary.json'), JSON.stringify(outcome, null, 2));

  return outcome;
}

export type FederationOutcome = Awaited<ReturnType<typeof report>>;

/** The closing lines on the terminal. */
export function printReport(outcome: FederationOutcome, seconds: number): void {
  process.stdout.write(`\nReport (${formatDuration(seconds)})\n`);
  process.stdout.write(`  honest clusters agree on every round's model: ${outcome.perRoundAgree.every(Boolean) ? 'yes' : 'NO'}\n`);
  process.stdout.write(`  validation loss: ${fmt(outcome.validation.initial)} → ${fmt(outcome.validation.final)}\n`);
  process.stdout.write(`  honest work applied: ${workLine(outcome.measures)}\n`);
  process.stdout.write(`  bytes moved: ${mib(outcome.bytes.received)} compressed vs ${mib(outcome.bytes.dense)} float32 (${(outcome.bytes.dense / Math.max(1, outcome.bytes.received)).toFixed(0)}×)\n`);
  for (const [peer, v] of Object.entries(outcome.verdicts)) {
    process.stdout.write(`  ${peer.padEnd(8)} applied ${String(v.applied).padStart(3)}  rejected: ${Object.entries(v.rejected).map(([reason, n]) => `${reason} × ${n}`).join(', ') || 'never'}\n`);
  }
  for (const b of outcome.bans) process.stdout.write(`  ban: ${b.by} banned ${b.peer} (${b.reason}, round ${b.round}) with ${b.evidence.length} signed statements as evidence\n`);
  process.stdout.write(`\nReport: ${outcome.report} (loss curve: ${join(dirname(outcome.report), 'loss.svg')})\n`);
}

/** What the honest coordinators decided and held over a run. */
export interface RunMeasures {
  /** By round: the mean last-step training loss of the honest clusters' trainers. */
  curve: Array<[number, number]>;
  /** Tokens the honest clusters trained, all rounds. */
  honestTokens: number;
  /**
   * Honest contributions (one per honest cluster that trained, per round) and how many the agreed
   * update applied, why the others were not (the reason most honest coordinators gave); rounds
   * that applied nothing; the lowest reputation an honest coordinator gave an honest peer;
   * whether the honest clusters' hashes agreed after every round.
   */
  honest: { applied: number; contributions: number; rejected: Record<string, number>; emptyRounds: number; minReputation: number; agreeEveryRound: boolean };
  /** The attackers' contributions (one per attacker per round, sent or not), how many were applied, the largest share one got, and why the others were not. */
  attackers: { applied: number; contributions: number; maxWeight: number; rejected: Record<string, number> };
  /** Payload bytes one peer sent over the run, on average. */
  bytesPerPeer: number;
}

/** What the honest coordinators decided and held, round by round (pure: from the round logs). */
export function measureRounds(clusters: readonly ClusterState[]): RunMeasures {
  const honest = clusters.filter((c) => c.honest);
  const honestIds = new Set(honest.map((c) => c.peerId));
  const attackerIds = clusters.filter((c) => !c.honest).map((c) => c.peerId);
  const result: Pick<RunMeasures, 'honest' | 'attackers'> = {
    honest: { applied: 0, contributions: 0, rejected: {}, emptyRounds: 0, minReputation: Infinity, agreeEveryRound: true },
    attackers: { applied: 0, contributions: 0, maxWeight: 0, rejected: {} },
  };
  const rounds = Math.max(0, ...honest.map((c) => c.rounds.length));
  const curve: Array<[number, number]> = [];
  let honestTokens = 0;
  for (let round = 0; round < rounds; round++) {
    const lines = honest.flatMap((c) => c.rounds.filter((r) => Number(r.round) === round));
    if (lines.length !== honest.length || new Set(lines.map((l) => l.modelHash)).size !== 1) result.honest.agreeEveryRound = false;
    if (lines.length === 0) continue;
    // Honest coordinators that agree apply the same set: a contribution counts once a round.
    const applied = new Map(lines[0]!.accepted.map((a) => [a.peerId, a.weight]));
    if (applied.size === 0) result.honest.emptyRounds++;
    const losses = lines.flatMap((l) => (Number.isFinite(l.loss) ? [l.loss] : []));
    if (losses.length > 0) curve.push([round, losses.reduce((a, b) => a + b, 0) / losses.length]);
    for (const line of lines) {
      honestTokens += Number(line.tokens);
      for (const [peerId, reputation] of Object.entries(line.reputation ?? {})) {
        if (honestIds.has(peerId)) result.honest.minReputation = Math.min(result.honest.minReputation, reputation);
      }
    }
    // Each honest cluster that trained contributed; each attacker is judged every round (sending nothing is a verdict too).
    const contributors = [...honest.filter((c) => c.rounds.some((r) => Number(r.round) === round && r.contributed !== false)).map((c) => c.peerId), ...attackerIds];
    for (const peerId of contributors) {
      const side = honestIds.has(peerId) ? result.honest : result.attackers;
      side.contributions++;
      if (applied.has(peerId)) {
        side.applied++;
        if (!honestIds.has(peerId)) result.attackers.maxWeight = Math.max(result.attackers.maxWeight, applied.get(peerId)!);
        continue;
      }
      // Not applied: the reason most honest coordinators gave (they may differ, or give none when the majority decided).
      const reasons = lines.flatMap((l) => l.rejected.filter((x) => x.peerId === peerId).map((x) => x.reason));
      const reason = mostCommon(reasons) ?? 'NotAgreed';
      side.rejected[reason] = (side.rejected[reason] ?? 0) + 1;
    }
  }
  // Every payload byte one cluster received, another sent: the mean sent per peer.
  const received = clusters.reduce((sum, c) => sum + c.rounds.reduce((s, r) => s + r.payloadBytes, 0), 0);
  return { ...result, curve, honestTokens, bytesPerPeer: received / Math.max(1, clusters.length) };
}

function mostCommon(values: readonly string[]): string | undefined {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0];
}

/** The honest clusters' decisions about honest work, in words. */
function workLine(m: RunMeasures): string {
  const { applied, contributions, emptyRounds, minReputation } = m.honest;
  return `${applied} of ${contributions} contributions (${contributions === 0 ? '—' : `${((100 * applied) / contributions).toFixed(1)}%`}), ${emptyRounds} rounds applying nothing, lowest reputation of an honest peer ${Number.isFinite(minReputation) ? minReputation.toFixed(2) : '—'}`;
}

/** A loss with three decimals, or a dash. */
export function fmt(value: number): string {
  return Number.isFinite(value) ? value.toFixed(3) : '—';
}

function mib(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}
