/**
 * mulberry32: a small, fast generator of uniform numbers in [0, 1), for what must repeat from a
 * seed but needs no statistical strength (test data, sampling text). Parameter initialisation
 * uses Philox (model/random.ts).
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
