/**
 * One adapter tuning step on a checkpoint read lazily, as `scale` measures it: rank-16 adapters
 * on q, k, v, o, gate, up, down of every block, gradients of one batch of arith examples block
 * by block (frozen weights fetched one block at a time, gradient checkpointing at block
 * boundaries, the LM head in vocabulary chunks), then one AdamW update of the adapters. Prints
 * JSON with the seconds of the step, the loss and the adapter size.
 *
 * `adapterSteps` takes probes (bench/adapterStepProfile.ts uses them): one step per probe, each
 * from the same fresh adapters, with the probe's source wrapper, block callback and marks. A
 * hook not given is not called, so the plain step (`adapterStep`) is the same code.
 */
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { openLazyCheckpoint } from "../src/io/CheckpointReader.ts"
import { loadTokenizer } from "../src/io/Tokenizer.ts"
import * as tf from "@tensorflow/tfjs"
import { adapterTargets, adapterTensors, blockwiseAdapterGradients, initAdapters } from "../src/model/Adapters.ts"
import { lossBatch } from "../src/model/Blockwise.ts"
import { lengthBuckets } from "../src/model/LengthBuckets.ts"
import type { ModelConfig } from "../src/model/ModelConfig.ts"
import { checkpointSource, type WeightSource } from "../src/model/WeightSource.ts"
import { arith } from "../src/tasks/Arith.ts"
import { encodeExample } from "../src/tasks/Encode.ts"
import { adamWStep, defaultAdamW, initAdamW } from "../src/tune/AdamW.ts"
import { buildBatch } from "../src/tune/Batches.ts"
import { benchRoom, run, useBackend } from "./common.ts"

/** Hooks into one step; each is optional and nothing is wrapped or called without it. */
export interface StepProbe {
  /** Wraps the checkpoint's weight source (e.g. to time its reads). */
  readonly source?: <E>(source: WeightSource<E>) => WeightSource<E>
  /** Told after each forward block (done ≤ layers) and each backward block. */
  readonly onBlock?: (done: number, total: number) => void
  /** Told as the step starts, when the gradients exist, and after the AdamW update. */
  readonly mark?: (event: "start" | "gradients" | "updated") => void
  /** Runs the step (e.g. inside tf.profile); by default it is simply run. */
  readonly around?: (step: () => Promise<void>) => Promise<void>
  /** How the step cuts padding (LengthBuckets.ts): Infinity keeps the batch whole; default the step's own. */
  readonly microBatchOverheadFlops?: number
}

export interface StepResult {
  readonly seconds: number
  readonly loss: number
  /** Weighted (answer) tokens of the batch. */
  readonly tokens: number
  /** The batch's shape: batch × (padded length − 1) rows. */
  readonly rows: { readonly batch: number; readonly seq: number }
  /** Rows every product sees, after padding was cut, and the micro-batches they ran in. */
  readonly rowsComputed: number
  readonly microBatches: number
  readonly adapterParameters: number
  readonly updated: number
  /** SHA-256 of every gradient's float32 bytes in order: equal digests, bit-identical gradients. */
  readonly gradientDigest: string
}

/** One plain step: what `scale` records. */
export const adapterStep = async (dir: string, batchSize = 8, rank = 16): Promise<StepResult> =>
  (await adapterSteps(dir, batchSize, rank, [{}])).steps[0]

/** One step per probe, each from the same fresh adapters and optimizer state. */
export const adapterSteps = async (
  dir: string,
  batchSize: number,
  rank: number,
  probes: ReadonlyArray<StepProbe>
): Promise<{ readonly config: ModelConfig; readonly steps: ReadonlyArray<StepResult> }> => {
  await useBackend("wasm")
  const room = await benchRoom()
  return run(Effect.scoped(Effect.gen(function*() {
    const tokenizer = yield* loadTokenizer(dir)
    const checkpoint = yield* openLazyCheckpoint(dir)
    const examples = arith({}, 1).take("train", batchSize).map((e) => encodeExample(tokenizer, e))
    const batch = lossBatch(buildBatch(examples, 128, tokenizer.padId ?? 0, false))
    const adapters = initAdapters(checkpoint.config, { rank, targets: adapterTargets }, 1)
    const tensors = adapterTensors(adapters).map((t) => t.tensor)
    const plain = checkpointSource(checkpoint, room)
    const steps: Array<StepResult> = []
    for (const probe of probes) {
      const source = probe.source === undefined ? plain : probe.source(plain)
      const step = Effect.gen(function*() {
        probe.mark?.("start")
        const started = performance.now()
        const { losses, grads } = yield* blockwiseAdapterGradients(source, adapters, [batch], {
          ...(probe.onBlock === undefined ? {} : { onBlock: probe.onBlock }),
          ...(probe.microBatchOverheadFlops === undefined ? {} : { microBatchOverheadFlops: probe.microBatchOverheadFlops })
        })
        probe.mark?.("gradients")
        const updated = adamWStep(defaultAdamW, initAdamW(tensors), tensors, grads, 1e-4)
        probe.mark?.("updated")
        const seconds = (performance.now() - started) / 1000
        const parts = lengthBuckets(checkpoint.config, batch, probe.microBatchOverheadFlops)
        const digest = createHash("sha256")
        for (const g of grads) digest.update(g.dataSync() as Float32Array)
        // Released so that a second step starts from the same memory (the adapters are the inputs').
        tf.dispose([...grads, ...updated.params, ...updated.state.m, ...updated.state.v])
        return {
          seconds,
          loss: losses[0],
          tokens: batch.weights.reduce((a, b) => a + b, 0),
          rows: { batch: batch.batchSize, seq: batch.seqLen },
          rowsComputed: parts.reduce((n, p) => n + p.batchSize * p.seqLen, 0),
          microBatches: parts.length,
          adapterParameters: tensors.reduce((n, t) => n + t.size, 0),
          updated: updated.params.length,
          gradientDigest: digest.digest("hex")
        }
      })
      const result = probe.around === undefined
        ? yield* step
        : yield* Effect.promise(async () => {
          let out: StepResult | undefined
          await probe.around!(async () => {
            out = await Effect.runPromise(step.pipe(Effect.orDie))
          })
          return out!
        })
      steps.push(result)
    }
    return { config: checkpoint.config, steps }
  })).pipe(Effect.orDie))
}
