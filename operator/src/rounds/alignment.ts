// Alignment: which (round, model hash) the run is at, from the peers' signed statuses. Pure: the
// round driver polls the statuses and acts on the verdict (resync, join, wait).

/** One peer's status as its GetStatus answered it. */
export interface PeerState {
  peer: string;
  round: bigint;
  /** 32 bytes; anything else is ignored (a peer that has no model yet). */
  modelHash: Uint8Array;
  /** PeerStatus.phase. */
  phase: string;
  /** End of its training window, Unix ms; 0 when it is not training. */
  trainDeadlineUnixMs: number;
}

export interface StateGroup {
  round: bigint;
  hash: Buffer;
  /** The peers that reported it (not this coordinator). */
  peers: string[];
  /** Their nonzero training deadlines. */
  deadlines: number[];
  /** How many of them are past their training window (validating, agreeing, applying, or gathering after the deadline). */
  pastTraining: number;
}

export type Alignment =
  /** The run is where this coordinator is. */
  | { verdict: 'in-step'; group: StateGroup }
  /** The run is at another state: fetch `group.hash` from `group.peers`. */
  | { verdict: 'behind'; group: StateGroup }
  /** No state has the votes (yet). */
  | { verdict: 'undecided' };

/**
 * Groups the statuses by (round, hash), this coordinator voting for its own state, and decides:
 *  - a group with a strict majority of the `members` (this coordinator included) wins;
 *  - failing one, once `timeUp`, the largest group of two or more wins, ties going to the
 *    smallest (round, hash) key, so that honest coordinators split two ways pick the same side.
 *    A group of two holds an honest member when at most one member is dishonest, and the driver
 *    adopts a checkpoint only if its parameters hash to the group's hash: whatever wins is a
 *    model an honest coordinator computed.
 * The winner is `in-step` when it is this coordinator's state, else `behind` — also when the
 * winner's round is lower (a majority still finishing the previous round is `behind` only if it
 * is ahead: callers wait in that case, see `isAhead`).
 */
export function alignmentOf(statuses: readonly PeerState[], own: { round: bigint; hash: Uint8Array }, members: number, nowMs: number, timeUp: boolean): Alignment {
  const needed = Math.floor(members / 2) + 1;
  const groups = new Map<string, StateGroup>();
  const keyOf = (round: bigint, hash: Uint8Array) => `${round.toString().padStart(20, '0')}:${Buffer.from(hash).toString('hex')}`;
  const ownKey = keyOf(own.round, own.hash);
  groups.set(ownKey, { round: own.round, hash: Buffer.from(own.hash), peers: [], deadlines: [], pastTraining: 0 });
  for (const status of statuses) {
    if (status.modelHash.length !== 32) continue;
    const key = keyOf(status.round, status.modelHash);
    let group = groups.get(key);
    if (group === undefined) groups.set(key, (group = { round: status.round, hash: Buffer.from(status.modelHash), peers: [], deadlines: [], pastTraining: 0 }));
    group.peers.push(status.peer);
    if (status.trainDeadlineUnixMs > 0) group.deadlines.push(status.trainDeadlineUnixMs);
    if (['Validating', 'Agreeing', 'Applying'].includes(status.phase) || (status.phase === 'Gathering' && status.trainDeadlineUnixMs < nowMs)) group.pastTraining++;
  }
  const sizeOf = (key: string) => groups.get(key)!.peers.length + (key === ownKey ? 1 : 0);
  const ranked = [...groups.keys()].sort((a, b) => sizeOf(b) - sizeOf(a) || (a < b ? -1 : a > b ? 1 : 0));
  let winner = ranked.find((key) => sizeOf(key) >= needed);
  if (winner === undefined && timeUp && sizeOf(ranked[0]!) >= 2) winner = ranked[0];
  if (winner === undefined) return { verdict: 'undecided' };
  return { verdict: winner === ownKey ? 'in-step' : 'behind', group: groups.get(winner)! };
}

/** Whether `group` is ahead of `own` (a later round, or the same round with another model). */
export function isAhead(group: StateGroup, own: { round: bigint; hash: Uint8Array }): boolean {
  return group.round > own.round || (group.round === own.round && !group.hash.equals(own.hash));
}

/**
 * Whether a coordinator in step with `group` can still join its training window: not when most
 * of the group is past it, nor when less than `minShareMs` of the window is left.
 */
export function canJoin(group: StateGroup, nowMs: number, minLeftMs: number): boolean {
  if (group.pastTraining * 2 > group.peers.length) return false;
  const deadline = medianDeadline(group);
  return deadline === undefined || deadline >= nowMs + minLeftMs;
}

/** The group's median training deadline (the upper middle), or undefined when none is training. */
export function medianDeadline(group: StateGroup): number | undefined {
  if (group.deadlines.length === 0) return undefined;
  const sorted = [...group.deadlines].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}
