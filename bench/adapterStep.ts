/**
 * One adapter tuning step on a checkpoint read lazily, as `scale` measures it: rank-16 adapters
 * on q, k, v, o, gate, up, down of every block, gradients of one batch of arith examples block
 * by block (frozen weights fetched one block at a time, gradient checkpointing at block
 * boundaries, the LM head in vocabulary chunks), then one AdamW update of the adapters. Prints
 * JSON with the seconds of the step, the loss and the adapter size.
 */
import { Effect } from "effect"
import { openLazyCheckpoint } from "../src/io/CheckpointReader.ts"
import { loadTokenizer } from "../src/io/Tokenizer.ts"
import { adapterTargets, adapterTensors, blockwiseAdapterGradients, initAdapters } from "../src/model/Adapters.ts"
import { lossBatch } from "../src/model/Blockwise.ts"
import { checkpointSource } from "../src/model/WeightSource.ts"
import { arith } from "../src/tasks/Arith.ts"
import { encodeExample } from "../src/tasks/Encode.ts"
import { adamWStep, defaultAdamW, initAdamW } from "../src/tune/AdamW.ts"
import { buildBatch } from "../src/tune/Batches.ts"
import { benchRoom, run, useBackend } from "./common.ts"

export const adapterStep = async (dir: string, batchSize = 8, rank = 16) => {
  await useBackend("wasm")
  const room = await benchRoom()
  return run(Effect.scoped(Effect.gen(function*() {
    const tokenizer = yield* loadTokenizer(dir)
    const checkpoint = yield* openLazyCheckpoint(dir)
    const examples = arith({}, 1).take("train", batchSize).map((e) => encodeExample(tokenizer, e))
    const batch = lossBatch(buildBatch(examples, 128, tokenizer.padId ?? 0, false))
    const adapters = initAdapters(checkpoint.config, { rank, targets: adapterTargets }, 1)
    const tensors = adapterTensors(adapters).map((t) => t.tensor)
    const started = performance.now()
    const { losses, grads } = yield* blockwiseAdapterGradients(checkpointSource(checkpoint, room), adapters, [batch])
    const updated = adamWStep(defaultAdamW, initAdamW(tensors), tensors, grads, 1e-4)
    const seconds = (performance.now() - started) / 1000
    return {
      seconds,
      loss: losses[0],
      tokens: batch.weights.reduce((a, b) => a + b, 0),
      adapterParameters: tensors.reduce((n, t) => n + t.size, 0),
      updated: updated.params.length
    }
  })).pipe(Effect.orDie))
}
