// Child process of `npm run bench -- trainer`: trains the benchmark model for a few steps and
// prints its peak RSS, so the figure holds the trainer alone (not the benchmark's MatMul baseline).
import { TrainerThread } from '../trainer/src/engine/trainer-thread.js';
import { parseTrainConfig } from '../trainer/src/train/config.js';

const config = parseTrainConfig(JSON.parse(process.argv[2]!));
const trainer = await TrainerThread.start(config);
await trainer.train({ maxSteps: Number(process.argv[3] ?? 10) });
await trainer.close();
process.stdout.write(`${JSON.stringify({ maxRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`);
