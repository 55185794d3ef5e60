/**
 * Picks the next token from logits: greedy at temperature 0, else softmax(logits / temperature)
 * restricted to the `topK` most likely tokens (0: all), drawn with `random` (a number in [0, 1)).
 */
export function sampleToken(logits: ArrayLike<number>, options: { temperature: number; topK: number }, random: () => number): number {
  const n = logits.length;
  if (options.temperature <= 0 || options.topK === 1) {
    let best = 0;
    for (let i = 1; i < n; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const kept = options.topK > 0 ? order.slice(0, options.topK) : order;
  const max = logits[kept[0]!]!;
  const weights = kept.map((i) => Math.exp((logits[i]! - max) / options.temperature));
  let total = 0;
  for (const w of weights) total += w;
  let target = random() * total;
  for (let j = 0; j < kept.length; j++) {
    target -= weights[j]!;
    if (target < 0) return kept[j]!;
  }
  return kept[kept.length - 1]!;
}
