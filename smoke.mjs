import { startOwner } from './dist/test/e2e/owner.js';
import { readFileSync } from 'node:fs';
const o = await startOwner('mallory', 33, { attack: 'equivocate' });
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  await wait(8000);
  const pods = (await o.cluster.core.listPodForAllNamespaces()).items;
  console.log(pods.map((p) => `${p.metadata.name} ${p.status?.phase} ${JSON.stringify(p.status?.containerStatuses?.[0]?.state)}`).join('\n'));
  console.log(o.kubelet.errors.slice(-5).join('\n'));
  for (const p of pods) { try { console.log('----', p.metadata.name); console.log(readFileSync(o.kubelet.logOf(p.metadata.namespace, p.metadata.name), 'utf8').slice(-1500)); } catch (e) { console.log('no log', String(e)); } }
} finally { await o.stop(); }
