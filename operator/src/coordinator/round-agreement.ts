// The agree phase of a round (round-driver.ts): signing this coordinator's manifest, passing on
// every manifest it accepts, waiting for the others' and deciding with agree(). It is separate
// because it is where honest coordinators must end up with the same inputs against an attacker
// who chooses whom it tells what and when; that rests on acceptance windows
// (rounds/acceptance.ts) and on a decision time common to the round, and both are easier to check
// in one place. The driver's inbound handler (manifestReceived) uses accept() and held() in every
// phase: a manifest is passed on as soon as it is accepted.
import { create } from '@bufbuild/protobuf';
import { ManifestSchema, RelayedManifestSchema, type RelayedManifest } from '../../../proto/gen/concord/v1/federation_pb.js';
import type { Envelope } from '../../../proto/gen/concord/v1/envelope_pb.js';
import type { PeerClient } from '../federation/client.js';
import { sealEnvelope } from '../federation/envelope.js';
import type { Identity } from '../federation/identity.js';
import type { PeerDirectory, PeerEntry } from '../federation/peers.js';
import type { Logger } from '../log.js';
import type { RoundMetrics } from '../metrics/rounds.js';
import { acceptedUntil, decisionTime, signRelay, validRelays, type RelaySignature, type Windows } from '../rounds/acceptance.js';
import { agree, buildManifest, checkManifest, type AcceptedContribution, type Agreement } from '../rounds/agreement.js';
import { statementHash } from '../rounds/contribution.js';
import type { EquivocationDetector } from '../rounds/equivocation.js';
import { RejectionReason } from '../rounds/reasons.js';
import type { Reputation } from '../rounds/reputation.js';
import { sleep } from '../runtime/backoff.js';
import type { RoundBook } from './round-book.js';
import { describe, POLL_MS } from './round-common.js';
import type { RoundSettings } from './round-settings.js';

/** A signer's manifests passed on at most: two different ones prove its equivocation. */
const RELAYED_PER_SIGNER = 2;

/** What agreement needs from the coordinator: nothing else of the round driver. */
export interface AgreementDeps {
  runId: string;
  identity: Identity;
  settings: Pick<RoundSettings, 'graceMs' | 'deliveryBoundMs'>;
  /** The remote peers: whom manifests go to. */
  peers: PeerDirectory;
  /** Peers and this coordinator: whose manifests and relay signatures count. */
  members: PeerDirectory;
  /** Their peer ids, sorted. */
  memberIds: readonly string[];
  ownPeerId: string;
  /** Bans decide who votes. */
  reputation: Reputation;
  /** Shared with the header checks: a signer's two manifests (or headers) are its equivocation. */
  equivocation: EquivocationDetector;
  client(name: string): PeerClient;
  log: Logger;
  metrics: Pick<RoundMetrics, 'contributionsRejected'>;
  /** Whether this coordinator passes manifests on (a dishonest one, in tests, does not). */
  relays: boolean;
  /** Bans a member with signed evidence. */
  ban(peerId: string, detail: string, evidence: readonly Envelope[], round: bigint): void;
}

export class RoundAgreement {
  private readonly deps: AgreementDeps;

  constructor(deps: AgreementDeps) {
    this.deps = deps;
  }

  /**
   * Signs this coordinator's manifest over `entries` (none: it sends none), sends it, and waits
   * until it holds a manifest from every voter or the round's decision time; then decides.
   *
   * Why these waits: waiting for every voter (not only those whose headers arrived) keeps an
   * attacker from making one coordinator decide early by announcing itself to that one alone;
   * the decision time is common to the round (the manifest deadline plus f + 1 delivery bounds),
   * not counted from this coordinator's own phase; and with acceptance windows a manifest one
   * honest coordinator accepts reaches the others in time to count there too. docs/protocol.md,
   * "Fault model", says what this guarantees.
   */
  async agree(book: RoundBook, entries: AcceptedContribution[] | undefined, signal: AbortSignal): Promise<Agreement> {
    const { identity, runId, log } = this.deps;
    const windows = this.windows(book);
    if (entries !== undefined && windows !== undefined) {
      if (Date.now() <= windows.manifestDeadlineMs) {
        const manifest = buildManifest(runId, book.round, entries.filter((e) => e.scorePpm > 0), [...book.equivocations.values()]);
        book.ourManifest = sealEnvelope(identity, { runId, round: book.round, schema: ManifestSchema, body: manifest });
        book.manifests.set(statementHash(book.ourManifest).toString('hex'), { signer: identity.publicKey, manifest, envelope: book.ourManifest, peerId: this.deps.ownPeerId, relays: [] });
      } else {
        // Signed after the deadline, it could count at some peers and not at others (or here):
        // it is not sent, and this coordinator decides on the others' manifests.
        log.warn('manifest-late', { round: book.round, lateMs: Date.now() - windows.manifestDeadlineMs });
      }
    }
    const voters = this.voters(book.round);
    const until = windows === undefined ? Date.now() : decisionTime({ ...windows, voters: voters.length });
    const sent = new Set<string>();
    const own = book.ourManifest === undefined ? undefined : create(RelayedManifestSchema, { manifest: book.ourManifest, relays: [] });
    const exchange = (peers: readonly PeerEntry[]) => Promise.all(peers.map(async (peer) => {
      try {
        const held = await this.deps.client(peer.name).exchangeManifest(own!);
        sent.add(peer.name);
        for (const relayed of held) this.accept(book, relayed, peer.name);
      } catch (error) {
        log.warn('manifest-exchange-failed', { round: book.round, peer: peer.name, error: describe(error) });
      }
    }));
    while (!signal.aborted) {
      const signers = book.manifestSigners();
      if (own !== undefined) await exchange(this.deps.peers.list().filter((p) => !sent.has(p.name) || !signers.has(p.peerId)));
      const held = book.manifestSigners();
      if (voters.every((id) => held.has(id)) || Date.now() >= until) break;
      await sleep(Math.min(POLL_MS * 2, Math.max(1, until - Date.now())), signal).catch(() => undefined);
    }
    // One more pass: what the others hold now may include a second manifest of a signer
    // (equivocation). Acceptance windows still apply to what it brings.
    if (own !== undefined && !signal.aborted) await exchange(this.deps.peers.list().filter((p) => sent.has(p.name)));
    book.decided = true;
    const agreement = agree([...book.manifests.values()], voters, { runId, round: book.round, keyFor: this.deps.members.keyFor });
    for (const refused of agreement.refused) {
      log.warn('manifest-refused', { round: book.round, peerId: refused.peerId, reason: refused.reason, detail: refused.detail });
      if (refused.reason === RejectionReason.Equivocation && refused.evidence !== undefined) this.deps.ban(refused.peerId, refused.detail, refused.evidence, book.round);
    }
    for (const conflict of agreement.conflicts) {
      this.deps.ban(conflict.peerId, `signed two different contribution headers for round ${book.round} (proven by the manifests)`, conflict.evidence, book.round);
      if (book.reject(conflict.peerId, RejectionReason.Equivocation, 'proven by the manifests')) this.deps.metrics.contributionsRejected.inc({ reason: RejectionReason.Equivocation });
    }
    return agreement;
  }

  /**
   * Records a manifest of `book`'s round if it is valid and inside its acceptance window, and
   * passes it on at once with this coordinator's relay signature to every peer but its signer
   * and `source`. A second, different manifest of one signer is recorded too (agree() then
   * counts neither) and is evidence for a ban even when it arrives too late to count.
   */
  accept(book: RoundBook, relayed: RelayedManifest, source?: string): void {
    const { runId, members, log } = this.deps;
    const envelope = relayed.manifest;
    const check = checkManifest(envelope, { runId, round: book.round, keyFor: members.keyFor });
    const signed = check.ok ? check : check.signed;
    if (signed === undefined) return;
    const peer = members.get(signed.signer)!;
    const equivocation = this.deps.equivocation.record(signed.envelope!);
    if (!equivocation.ok && equivocation.reason === RejectionReason.Equivocation) this.deps.ban(peer.peerId, equivocation.detail, equivocation.evidence, book.round);
    if (!check.ok || envelope === undefined) return;
    const key = statementHash(envelope);
    const id = key.toString('hex');
    if (book.manifests.has(id) || book.decided) return;
    const windows = this.windows(book);
    // Before this round's deadline is known here (the coordinator is still aligning) nothing can
    // be placed in its window: the manifest comes again with the peers' answers.
    if (windows === undefined) return;
    const relays = validRelays(relayed.relays, { runId, round: book.round, statementHash: key, signer: signed.signer, keyFor: members.keyFor });
    const until = acceptedUntil(windows, relays.length);
    if (Date.now() > until) {
      log.warn('manifest-outside-window', { round: book.round, peerId: peer.peerId, relays: relays.length, lateMs: Date.now() - until, from: source });
      return;
    }
    const passedOn = [...book.manifests.values()].filter((m) => m.peerId === peer.peerId).length;
    book.manifests.set(id, { ...check, peerId: peer.peerId, relays });
    if (!this.deps.relays || peer.peerId === this.deps.ownPeerId || passedOn >= RELAYED_PER_SIGNER) return;
    const outgoing = create(RelayedManifestSchema, { manifest: envelope, relays: [...relays, this.vouch(book, id, key)] });
    for (const to of this.deps.peers.list()) {
      if (to.name === source || to.peerId === peer.peerId) continue;
      this.deps.client(to.name).exchangeManifest(outgoing)
        .then((held) => { for (const other of held) this.accept(book, other, to.name); })
        .catch((error: unknown) => log.warn('manifest-relay-failed', { round: book.round, peer: to.name, error: describe(error) }));
    }
  }

  /** Every manifest held for `book`'s round (this coordinator's own first), each with the relays
   * it was accepted with and this coordinator's: what ExchangeManifest answers. */
  held(book: RoundBook): RelayedManifest[] {
    const out: RelayedManifest[] = [];
    for (const [id, m] of book.manifests) {
      const relays = m.peerId === this.deps.ownPeerId ? [] : [...m.relays, this.vouch(book, id, statementHash(m.envelope!))];
      const entry = create(RelayedManifestSchema, { manifest: m.envelope!, relays });
      if (m.peerId === this.deps.ownPeerId) out.unshift(entry);
      else out.push(entry);
    }
    return out;
  }

  /**
   * The members whose manifests count in `round`, and are waited for: all but those banned two
   * rounds before or earlier. Every honest coordinator must count the same set; a ban's evidence
   * reaches them all within the round it is found in, but one may record it a round later than
   * another (a relay arriving after it moved on), so a ban takes effect on the vote two rounds on.
   */
  voters(round: bigint): string[] {
    return this.deps.memberIds.filter((id) => {
      const ban = this.deps.reputation.banOf(id);
      return ban === undefined || BigInt(ban.round) + 2n > round;
    });
  }

  private windows(book: RoundBook): Omit<Windows, 'voters'> | undefined {
    if (book.trainDeadlineMs === undefined) return undefined;
    return { manifestDeadlineMs: book.trainDeadlineMs + 2 * this.deps.settings.graceMs, deliveryBoundMs: this.deps.settings.deliveryBoundMs };
  }

  /** This coordinator's relay signature on a manifest it accepted (signed once). */
  private vouch(book: RoundBook, id: string, key: Uint8Array): RelaySignature {
    let relay = book.vouched.get(id);
    if (relay === undefined) book.vouched.set(id, (relay = signRelay(this.deps.identity, this.deps.runId, book.round, key)));
    return relay;
  }
}
