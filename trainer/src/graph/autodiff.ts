// Reverse-mode differentiation over the graph: walk the nodes from the loss back to the
// parameters, call each node's gradient rule, and add the backward nodes to the same graph, so
// one ONNX model computes loss and gradients in a single run.

import { formatShape, isFloat, type Node, type Tensor } from './graph.js';
import { add, zeros } from './ops.js';

/** Gradients of a scalar `loss` with respect to each tensor of `wrt` (usually graph.params), in
 * the same order. A tensor used several times receives the sum of its contributions; one the loss
 * does not depend on gets zeros. */
export function gradients(loss: Tensor, wrt: readonly Tensor[]): Tensor[] {
  if (loss.rank !== 0 || !isFloat(loss.dtype)) throw new Error(`gradients: loss must be a float scalar, got ${loss}`);
  const graph = loss.graph;
  for (const w of wrt) {
    if (w.graph !== graph) throw new Error(`gradients: ${w.name} belongs to another graph`);
    if (!isFloat(w.dtype)) throw new Error(`gradients: cannot differentiate with respect to ${w}`);
  }
  const nodes = [...graph.nodes]; // snapshot: the backward nodes we add are not walked
  const relevant = onPath(nodes, wrt, loss);

  const pending = new Map<Tensor, Tensor[]>([[loss, [graph.scalar(1, loss.dtype)]]]);
  const totals = new Map<Tensor, Tensor>();
  const total = (t: Tensor): Tensor | undefined => {
    let sum = totals.get(t);
    if (sum === undefined) {
      const parts = pending.get(t);
      if (parts === undefined) return undefined;
      sum = parts.reduce((s, p) => add(s, p));
      totals.set(t, sum);
    }
    return sum;
  };

  // Creation order is topological, so in reverse every consumer of a tensor is visited before
  // its producer: a tensor's gradient is complete when its producer is reached.
  for (const node of nodes.reverse()) {
    if (!node.inputs.some((x) => relevant.has(x))) continue;
    if (!node.outputs.some((y) => pending.has(y))) continue;
    if (node.grad === undefined) throw new Error(`gradients: ${node.op} has no gradient rule, but the loss depends on a parameter through it`);
    const gys = node.outputs.map((y) => total(y) ?? zeros(y));
    const gxs = node.grad(gys, node);
    node.inputs.forEach((x, i) => {
      const gx = gxs[i];
      if (gx === undefined || !relevant.has(x)) return;
      checkGradient(node, x, gx);
      const parts = pending.get(x);
      if (parts === undefined) pending.set(x, [gx]);
      else parts.push(gx);
    });
  }
  return wrt.map((w) => total(w) ?? zeros(w));
}

/** Float tensors that depend on some `wrt` tensor and on which the loss depends: the only ones
 * that need a gradient. */
function onPath(nodes: readonly Node[], wrt: readonly Tensor[], loss: Tensor): Set<Tensor> {
  const fromWrt = new Set<Tensor>(wrt);
  for (const node of nodes) {
    if (node.inputs.some((x) => fromWrt.has(x))) for (const y of node.outputs) if (isFloat(y.dtype)) fromWrt.add(y);
  }
  const toLoss = new Set<Tensor>([loss]);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i] as Node;
    if (node.outputs.some((y) => toLoss.has(y))) for (const x of node.inputs) toLoss.add(x);
  }
  return new Set([...fromWrt].filter((t) => toLoss.has(t)));
}

function checkGradient(node: Node, x: Tensor, gx: Tensor): void {
  const same = gx.dtype === x.dtype && gx.rank === x.rank && gx.shape.every((d, i) => d === x.shape[i]);
  if (!same) {
    throw new Error(`gradients: the ${node.op} rule returned ${gx.dtype}${formatShape(gx.shape)} for input ${x} (a bug in the rule)`);
  }
}
