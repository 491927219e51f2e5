/**
 * Block-by-block execution: every batch of a set is embedded, then each decoder block's weights
 * are fetched once (from a WeightSource), applied to every batch's hidden states, and released
 * before the next block's — the sequential scheme llm-compressor uses for calibration. Device
 * memory holds one block's weights plus the hidden states [tokens, D] carried between blocks,
 * so it does not grow with depth, and a model larger than the device still runs.
 *
 * The same decoderBlock runs here as in the whole forward, on the same batch shapes, so
 * observations (for the scorers) and losses equal the whole-model ones up to float summation
 * order. Before each block the activations a batch will need are estimated and checked against
 * the device budget: a batch too large fails with MemoryBudgetExceeded saying so.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { DeviceRoom } from "./DeviceRoom.ts"
import type { MemoryBudgetExceeded } from "./Footprint.ts"
import { chunkedNll, chunkedNllGradient } from "./ChunkedLoss.ts"
import type { TokenBatch } from "./Gradients.ts"
import type { ModelConfig } from "./ModelConfig.ts"
import { lengthBuckets } from "./LengthBuckets.ts"
import type { LayerParams } from "./Params.ts"
import { readFloats } from "./Read.ts"
import { type BlockContext, blockContext, decoderBlock, type ObservedName, rmsNorm } from "./Transformer.ts"
import { releaseLayer, type WeightSource } from "./WeightSource.ts"

/** Sees an intermediate tensor of batch `batch` in block `layer` (inside a tidy), with the block's weights. */
export type BatchObserver = (batch: number, layer: number, name: ObservedName, tensor: tf.Tensor2D, weights: LayerParams) => void

/** Token ids [batchSize, seqLen], right-padded (causal attention never lets a real token see padding). */
export interface IdBatch {
  readonly ids: Int32Array
  readonly batchSize: number
  readonly seqLen: number
}

/**
 * Tensor bytes one block holds at its peak for a batch of B × T tokens: everything its tidy
 * keeps until it returns (hidden, normalised and projected states, rotary products, the
 * [B·H, T, T] scores, probabilities and mask, the MLP's gate, up, activation and products),
 * with a fifth more for what the estimate leaves out.
 */
export const blockActivationBytes = (config: ModelConfig, layer: number, B: number, T: number): number => {
  const { intermediateSize: I, numHeads: H, numKeyValueHeads: KV } = config.layers[layer]
  const D = config.hiddenSize
  const hd = config.headDim
  const N = B * T
  const floats = N * (8 * D + 6 * H * hd + 6 * KV * hd + 6 * I) + 4 * B * H * T * T
  return Math.ceil(floats * 4 * 1.2)
}

const batchAdvice = "Lower the batch size (--batch-size) or the sequence length, or use the tensorflow backend."

/** Checks that block `layer` fits for the largest batch, beside what is already allocated. */
export const ensureBlockFits = (room: DeviceRoom, config: ModelConfig, layer: number, batches: ReadonlyArray<IdBatch>) => {
  const largest = Math.max(0, ...batches.map((b) => blockActivationBytes(config, layer, b.batchSize, b.seqLen)))
  return room.ensure(`decoder block ${layer} on a batch`, largest, batchAdvice)
}

/** The hidden states entering block 0, one [B*T, D] tensor per batch (the caller disposes them). */
export const embedBatches = <E>(source: WeightSource<E>, batches: ReadonlyArray<IdBatch>) =>
  Effect.forEach(batches, (batch) => source.embed(batch.ids))

/** Per batch: the shapes and rotary tables its blocks share (dispose with `disposeContexts`). */
export const batchContexts = (config: ModelConfig, batches: ReadonlyArray<IdBatch>): Array<BlockContext> =>
  batches.map((b) => blockContext(config, b.batchSize, b.seqLen, new Array<number>(b.batchSize).fill(0)))

export const disposeContexts = (contexts: ReadonlyArray<BlockContext>): void => {
  for (const c of contexts) tf.dispose([c.rope.cos, c.rope.sin])
}

/** Block `layer` applied to h (which is disposed); the result is kept. */
export const applyBlock = (
  config: ModelConfig,
  layer: number,
  weights: LayerParams,
  h: tf.Tensor2D,
  context: BlockContext,
  observe?: (name: ObservedName, tensor: tf.Tensor2D) => void
): tf.Tensor2D => {
  const next = tf.tidy(() =>
    decoderBlock(config, layer, weights, h, context, { observe: observe && ((_, name, t) => observe(name, t)) }).h
  )
  h.dispose()
  return next
}

export interface RunBlocksOptions {
  readonly observe?: BatchObserver
  /**
   * Sees every batch's hidden states entering block `layer` (they are disposed after the block:
   * copy what you keep). An Effect, so that it can read them asynchronously.
   */
  readonly onBlockInput?: (layer: number, hidden: ReadonlyArray<tf.Tensor2D>) => Effect.Effect<void>
  /** Run after block `layer` was applied to every batch and its weights released (e.g. to read what `observe` kept). */
  readonly afterBlock?: (layer: number) => Effect.Effect<void>
  /** Told after each block. */
  readonly onBlock?: (done: number, total: number) => void
}

/**
 * Runs every batch through every block, one block's weights at a time. Returns the hidden
 * states leaving the last block, one per batch (the caller disposes them).
 */
export const runBlocks = Effect.fnUntraced(function*<E>(
  source: WeightSource<E>,
  batches: ReadonlyArray<IdBatch>,
  options: RunBlocksOptions = {}
): Effect.fn.Return<Array<tf.Tensor2D>, E | MemoryBudgetExceeded> {
  const { config } = source
  const contexts = batchContexts(config, batches)
  let hidden: Array<tf.Tensor2D> = []
  return yield* Effect.gen(function*() {
    hidden = yield* embedBatches(source, batches)
    const L = config.layers.length
    for (let layer = 0; layer < L; layer++) {
      yield* ensureBlockFits(source.room, config, layer, batches)
      // Before the weights are fetched: nothing to release if the read is cut short.
      if (options.onBlockInput !== undefined) yield* options.onBlockInput(layer, hidden)
      const weights = yield* source.layer(layer)
      try {
        hidden = hidden.map((h, b) =>
          applyBlock(config, layer, weights, h, contexts[b], options.observe && ((name, t) => options.observe!(b, layer, name, t, weights)))
        )
      } finally {
        releaseLayer(weights)
      }
      if (options.afterBlock !== undefined) yield* options.afterBlock(layer)
      options.onBlock?.(layer + 1, L)
      yield* Effect.yieldNow
    }
    return hidden
  }).pipe(
    Effect.onError(() => Effect.sync(() => tf.dispose(hidden))),
    Effect.ensuring(Effect.sync(() => disposeContexts(contexts)))
  )
})

/** The final RMSNorm of hidden states [N, D] (the input is disposed). */
export const finalNorm = <E>(source: WeightSource<E>, hidden: ReadonlyArray<tf.Tensor2D>) =>
  Effect.map(source.norm, (norm) => {
    const out = hidden.map((h) => {
      const y = tf.tidy(() => rmsNorm(h, norm, source.config.rmsNormEps))
      h.dispose()
      return y
    })
    norm.dispose()
    return out
  })

/** A batch for the next-token loss: position t of `ids` [B, T-1] predicts `targets`[b·(T-1)+t] with `weights`. */
export interface LossBatch extends IdBatch {
  readonly targets: Int32Array
  readonly weights: Float32Array
}

/** Inputs (the first T-1 tokens), targets (the last T-1) and weights of a token batch, as nextTokenLoss splits it. */
export const lossBatch = (batch: TokenBatch): LossBatch => {
  const { batchSize: B, seqLen: T } = batch
  const inputs = new Int32Array(B * (T - 1))
  const targets = new Int32Array(B * (T - 1))
  for (let b = 0; b < B; b++) {
    inputs.set(batch.ids.subarray(b * T, b * T + T - 1), b * (T - 1))
    targets.set(batch.ids.subarray(b * T + 1, b * T + T), b * (T - 1))
  }
  return { ids: inputs, batchSize: B, seqLen: T - 1, targets, weights: batch.weights ?? new Float32Array(B * (T - 1)).fill(1) }
}

export interface BlockwiseLoss {
  /** Σ weight · negative log-likelihood, per batch. */
  readonly weightedSums: ReadonlyArray<number>
  /** Σ weight, per batch. */
  readonly counts: ReadonlyArray<number>
}

/** Next-token losses of batches, run block by block with the LM head in vocabulary chunks. */
export const blockwiseLoss = Effect.fnUntraced(function*<E>(
  source: WeightSource<E>,
  batches: ReadonlyArray<LossBatch>,
  options: Pick<RunBlocksOptions, "onBlock"> = {}
): Effect.fn.Return<BlockwiseLoss, E | MemoryBudgetExceeded> {
  const hidden = yield* runBlocks(source, batches, options)
  const finals = yield* finalNorm(source, hidden)
  return yield* lossOfFinals(source, batches, finals)
})

/** Weighted loss sums of final (normalised) hidden states, which are disposed. */
export const lossOfFinals = Effect.fnUntraced(function*<E>(
  source: WeightSource<E>,
  batches: ReadonlyArray<LossBatch>,
  finals: ReadonlyArray<tf.Tensor2D>
): Effect.fn.Return<BlockwiseLoss, E | MemoryBudgetExceeded> {
  const weightedSums: Array<number> = []
  const counts: Array<number> = []
  yield* Effect.forEach(batches, (batch, b) =>
    Effect.gen(function*() {
      const nll = yield* chunkedNll(source, finals[b], batch.targets)
      let sum = 0
      let count = 0
      for (let r = 0; r < nll.length; r++) {
        if (batch.weights[r] === 0) continue
        sum += batch.weights[r] * nll[r]
        count += batch.weights[r]
      }
      weightedSums.push(sum)
      counts.push(count)
    }), { discard: true }).pipe(Effect.ensuring(Effect.sync(() => tf.dispose([...finals]))))
  return { weightedSums, counts }
})

export interface BackwardOptions extends Pick<RunBlocksOptions, "onBlock" | "afterBlock"> {
  /** The fixed cost of a micro-batch (LengthBuckets.ts); 0 cuts all padding, Infinity keeps each batch whole. */
  readonly microBatchOverheadFlops?: number
}

/**
 * Computes backward through the model block by block (gradient checkpointing at block
 * boundaries): a forward pass keeps each block's input in host memory, the gradient of each
 * batch's mean next-token loss at the last block comes from the chunked LM head through the
 * final norm, and then, from the last block to the first, each block's weights are fetched once
 * and `backward` is called per batch with the block's input and the gradient leaving the block;
 * it recomputes the block, differentiates whatever it needs (inside a tidy: keep what must
 * outlive it) and returns the gradient entering the block. Device memory holds one block's
 * weights and activations, whatever the depth. Each batch runs as micro-batches of rows of
 * similar length with their padding cut (LengthBuckets.ts): `backward` is called per
 * micro-batch, and the gradients it sees sum to those of the batch's mean loss. Returns each
 * batch's mean loss.
 */
export const blockwiseBackward = Effect.fnUntraced(function*<E>(
  source: WeightSource<E>,
  batches: ReadonlyArray<LossBatch>,
  backward: (
    layer: number,
    microBatch: number,
    weights: LayerParams,
    input: tf.Tensor2D,
    context: BlockContext,
    upstream: tf.Tensor2D
  ) => tf.Tensor2D,
  options: BackwardOptions = {}
): Effect.fn.Return<Array<number>, E | MemoryBudgetExceeded> {
  const { config } = source
  const L = config.layers.length
  const parts = batches.flatMap((batch, b) =>
    lengthBuckets(config, batch, options.microBatchOverheadFlops).map((part) => ({ part, of: b }))
  )
  const micro = parts.map((p) => p.part)
  const stored: Array<Array<Float32Array>> = []
  const hidden = yield* runBlocks(source, micro, {
    onBlockInput: (layer, hs) =>
      Effect.map(Effect.forEach(hs, (h) => Effect.map(readFloats(h), (data) => data.slice())), (copies) => {
        stored[layer] = copies
      }),
    ...(options.onBlock !== undefined ? { onBlock: (done: number) => options.onBlock!(done, 2 * L) } : {})
  })
  const losses: Array<number> = []
  let upstream: Array<tf.Tensor2D> = []
  const contexts = batchContexts(config, micro)
  yield* Effect.gen(function*() {
    const norm = yield* source.norm.pipe(Effect.onError(() => Effect.sync(() => tf.dispose(hidden))))
    // (A yield that fails skips a generator's finally blocks: cleanup rides on Effect.ensuring.)
    // The LM head per batch, its micro-batches' rows together: the head's rows are read once a batch.
    yield* Effect.forEach(batches, (_, b) =>
      Effect.gen(function*() {
        const own = parts.flatMap((p, j) => (p.of === b ? [j] : []))
        const targets = Int32Array.from(own.flatMap((j) => Array.from(micro[j].targets)))
        const coefficients = Float32Array.from(own.flatMap((j) => Array.from(micro[j].weights.map((w) => w / micro[j].normaliser))))
        const h = tf.concat(own.map((j) => hidden[j])) as tf.Tensor2D
        const final = tf.tidy(() => rmsNorm(h, norm, config.rmsNormEps))
        const { loss, gradient } = yield* chunkedNllGradient(source, final, targets, coefficients).pipe(
          Effect.ensuring(Effect.sync(() => final.dispose())),
          Effect.onError(() => Effect.sync(() => h.dispose()))
        )
        losses[b] = loss
        upstream.push(...tf.tidy(() => {
          const dh = tf.grad((x: tf.Tensor) => rmsNorm(x as tf.Tensor2D, norm, config.rmsNormEps))(h, gradient)
          return tf.split(dh, own.map((j) => micro[j].batchSize * micro[j].seqLen)) as Array<tf.Tensor2D>
        }))
        tf.dispose([gradient, h])
      }), { discard: true }).pipe(Effect.ensuring(Effect.sync(() => tf.dispose([...hidden, norm]))))
    for (let layer = L - 1; layer >= 0; layer--) {
      yield* ensureBlockFits(source.room, config, layer, micro)
      const weights = yield* source.layer(layer)
      try {
        upstream = upstream.map((dy, b) => {
          const rows = micro[b].batchSize * micro[b].seqLen
          const input = tf.tensor2d(stored[layer][b], [rows, config.hiddenSize])
          const dx = backward(layer, b, weights, input, contexts[b], dy)
          tf.dispose([input, dy])
          return dx
        })
      } finally {
        releaseLayer(weights)
      }
      delete stored[layer]
      // After each backward block only (the forward pass is not told).
      if (options.afterBlock !== undefined) yield* options.afterBlock(layer)
      options.onBlock?.(2 * L - layer, 2 * L)
      yield* Effect.yieldNow
    }
  }).pipe(Effect.ensuring(Effect.sync(() => {
    tf.dispose(upstream)
    disposeContexts(contexts)
  })))
  return losses
})
