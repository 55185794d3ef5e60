import { describe, expect, it } from '@jest/globals';
import { makeContribution, trainRound } from '../../operator/src/coordinator/contribute.js';
import { TrainerGateway } from '../../operator/src/coordinator/trainer-gateway.js';
import { MemoryBlobStore } from '../../operator/src/federation/blob-store.js';
import { generateIdentity } from '../../operator/src/federation/identity.js';
import { PeerDirectory } from '../../operator/src/federation/peers.js';
import { checkContributionHeader, checkPayload } from '../../operator/src/rounds/contribution.js';
import { CoordinatorClient } from '../../trainer/src/agent/coordinator-client.js';
import { SparseLoCoEncoder } from '../../trainer/src/codec/index.js';
import { CALL_MS, TEARDOWN_MS, TRAINERS_JOIN_MS, within } from '../support/deadlines.js';

const PARAMS = 20_000;

// The coordinator's side of a round up to its contribution, over real gRPC: trainers' deltas
// combined by tokens, compressed, and committed in a signed header that the round checks accept.
describe('a cluster contributes', () => {
  it('combines its trainers by tokens, survives a failing one, and commits to a payload peers accept', async () => {
    const blobs = new MemoryBlobStore();
    const base = Float32Array.from({ length: PARAMS }, (_, i) => Math.sin(i));
    const baseHash = blobs.put(new Uint8Array(base.buffer));
    const gateway = new TrainerGateway({ paramCount: PARAMS, blobs });
    const address = `127.0.0.1:${await gateway.listen('127.0.0.1', 0)}`;
    const leave = new AbortController();
    const clients: CoordinatorClient[] = [];
    const seen: Array<{ replicas: number; peers: string[] }> = [];
    // Replica r uploads Δ = r + 1 everywhere after (r + 1)·1000 tokens; replica 2 fails.
    const joins = [0, 1, 2].map((replica) => {
      const client = new CoordinatorClient(address);
      clients.push(client);
      return client.join({ trainerId: `t${replica}`, group: 'cpu', replica, device: 'cpu' }, async (task) => {
        if (task.task.case !== 'train') throw new Error('only train tasks here');
        seen.push({ replicas: task.task.value.replicas, peers: task.task.value.peers });
        if (replica === 2) throw new Error('out of memory');
        await client.fetchParams(task.task.value.baseHash, PARAMS);
        await client.uploadDelta(task.taskId, new Float32Array(PARAMS).fill(replica + 1));
        await client.complete(task.taskId, { case: 'train', value: { tokens: BigInt((replica + 1) * 1000), steps: 10n, finalLoss: 5 } });
      }, { signal: leave.signal });
    });
    try {
      await gateway.waitForTrainers(3, TRAINERS_JOIN_MS);
      const round = await trainRound(gateway, ['t0', 't1', 't2'], {
        round: 4n, baseHash, deadlineUnixMs: Date.now() + CALL_MS, runSeed: 1n, peerId: 'me', peers: ['me', 'them'], length: PARAMS,
      });
      expect(round.tokens).toBe(3000n);
      expect(round.trained).toEqual(['t0', 't1']);
      expect(round.failed).toEqual([{ trainerId: 't2', error: expect.stringMatching(/out of memory/) }]);
      // (1·1000 + 2·2000) / 3000
      expect(round.delta[0]).toBeCloseTo(5 / 3, 6);
      expect(seen.every((s) => s.replicas === 3 && s.peers.join() === 'me,them')).toBe(true);

      const me = generateIdentity();
      const encoder = new SparseLoCoEncoder(PARAMS, { chunk: 4096, k: 64, bits: 2 });
      const contribution = await makeContribution(me, encoder, { runId: 'ns/run', round: 4n, baseHash, tokens: round.tokens, delta: round.delta });
      const header = checkContributionHeader(contribution.statement, {
        runId: 'ns/run', round: 4n, baseHash, maxPayloadBytes: 1 << 20, keyFor: new PeerDirectory([{ name: 'me', publicKey: me.publicKey }]).keyFor,
      });
      expect(header.ok).toBe(true);
      if (!header.ok) throw new Error('unreachable');
      expect(header.header.tokens).toBe(3000n);
      const payload = checkPayload(header.header, contribution.payload, PARAMS);
      expect(payload.ok).toBe(true);
      // A peer expecting another base refuses it as stale.
      const stale = checkContributionHeader(contribution.statement, {
        runId: 'ns/run', round: 4n, baseHash: Buffer.alloc(32), maxPayloadBytes: 1 << 20, keyFor: new PeerDirectory([{ name: 'me', publicKey: me.publicKey }]).keyFor,
      });
      expect(stale.ok).toBe(false);
      if (!stale.ok) expect(stale.reason).toBe('StaleBase');
    } finally {
      leave.abort();
      await gateway.close(100);
      await Promise.allSettled(joins);
      for (const client of clients) client.close();
    }
  }, within(TRAINERS_JOIN_MS, CALL_MS, TEARDOWN_MS));
});
