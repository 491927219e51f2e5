/**
 * Low-rank adapters (LoRA): for chosen projections of every block, a trainable update
 * scale · a · b beside the frozen weight (a [in, r], b [r, out], scale = alpha / r), so tuning
 * needs optimizer state for the adapters only — a few MB instead of 16 bytes per parameter.
 * Initialised as PEFT does (a uniform in ±1/√in, b zero), so a fresh adapter changes nothing.
 * `mergeAdapters` folds them into the weights (w + scale · a · b), after which the model is a
 * plain checkpoint again.
 *
 * Gradients come two ways: through the whole graph (`adapterGradients`, small models), or block
 * by block with the frozen weights fetched one block at a time from a WeightSource and only the
 * block inputs kept (`blockwiseAdapterGradients`, gradient checkpointing: memory does not grow
 * with depth, and the LM head's logits are never materialised for the whole batch).
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { MemoryBudgetExceeded } from "./Footprint.ts"
import { type BackwardOptions, blockwiseBackward, type LossBatch } from "./Blockwise.ts"
import type { TokenBatch } from "./Gradients.ts"
import type { ModelConfig } from "./ModelConfig.ts"
import type { LayerParams, Linear, Params } from "./Params.ts"
import { readScalar } from "./Read.ts"
import { Rng } from "./Rng.ts"
import { decoderBlock, nextTokenLoss } from "./Transformer.ts"
import type { WeightSource } from "./WeightSource.ts"

export const adapterTargets = ["q", "k", "v", "o", "gate", "up", "down"] as const
export type AdapterTarget = (typeof adapterTargets)[number]

export interface AdapterSpec {
  readonly rank: number
  /** The update is scaled by alpha / rank (PEFT's lora_alpha); default alpha = rank (scale 1). */
  readonly alpha?: number
  readonly targets: ReadonlyArray<AdapterTarget>
}

export interface AdapterPair {
  readonly a: tf.Tensor2D // [in, r]
  readonly b: tf.Tensor2D // [r, out]
}

export interface Adapters {
  readonly spec: AdapterSpec
  readonly scale: number
  /** Per decoder block, the pair of each target. */
  readonly layers: ReadonlyArray<Readonly<Partial<Record<AdapterTarget, AdapterPair>>>>
}

/** [in, out] of a target's weight in block `layer`. */
export const targetShape = (config: ModelConfig, layer: number, target: AdapterTarget): [number, number] => {
  const { numHeads: H, numKeyValueHeads: KV, intermediateSize: I } = config.layers[layer]
  const D = config.hiddenSize
  const hd = config.headDim
  switch (target) {
    case "q":
      return [D, H * hd]
    case "k":
    case "v":
      return [D, KV * hd]
    case "o":
      return [H * hd, D]
    case "gate":
    case "up":
      return [D, I]
    case "down":
      return [I, D]
  }
}

/** Fresh adapters: a uniform in ±1/√in from a seeded generator, b zero (the model is unchanged). */
export const initAdapters = (config: ModelConfig, spec: AdapterSpec, seed: number): Adapters => {
  const rng = Rng.seeded(seed)
  return {
    spec,
    scale: (spec.alpha ?? spec.rank) / spec.rank,
    layers: config.layers.map((_, i) =>
      Object.fromEntries(spec.targets.map((target) => {
        const [inDim, outDim] = targetShape(config, i, target)
        const bound = 1 / Math.sqrt(inDim)
        const a = new Float32Array(inDim * spec.rank)
        for (let j = 0; j < a.length; j++) a[j] = (2 * rng.uniform() - 1) * bound
        return [target, { a: tf.tensor2d(a, [inDim, spec.rank]), b: tf.zeros([spec.rank, outDim]) as tf.Tensor2D }]
      }))
    )
  }
}

/** Every adapter tensor in a fixed order (block, target in spec order, a then b), with a name for snapshots. */
export const adapterTensors = (adapters: Adapters): Array<{ readonly name: string; readonly tensor: tf.Tensor2D }> =>
  adapters.layers.flatMap((pairs, i) =>
    adapters.spec.targets.flatMap((target) => {
      const pair = pairs[target]!
      return [
        { name: `layers.${i}.${target}.lora_a`, tensor: pair.a },
        { name: `layers.${i}.${target}.lora_b`, tensor: pair.b }
      ]
    })
  )

/** The same adapters with their tensors replaced, in `adapterTensors` order (e.g. after an optimizer step). */
export const withTensors = (adapters: Adapters, tensors: ReadonlyArray<tf.Tensor>): Adapters => {
  let k = 0
  return {
    ...adapters,
    layers: adapters.layers.map(() =>
      Object.fromEntries(adapters.spec.targets.map((target) => {
        const a = tensors[k++] as tf.Tensor2D
        const b = tensors[k++] as tf.Tensor2D
        return [target, { a, b }]
      }))
    )
  }
}

export const disposeAdapters = (adapters: Adapters): void => {
  tf.dispose(adapterTensors(adapters).map((t) => t.tensor))
}

const field: Readonly<Record<AdapterTarget, keyof LayerParams>> = {
  q: "q",
  k: "k",
  v: "v",
  o: "o",
  gate: "gate",
  up: "up",
  down: "down"
}

/** A block's weights with its adapters attached (a view: no tensor is copied). */
export const adaptLayer = (p: LayerParams, pairs: Partial<Record<AdapterTarget, AdapterPair>>, scale: number): LayerParams => {
  const out: Record<string, unknown> = { ...p }
  for (const [target, pair] of Object.entries(pairs) as Array<[AdapterTarget, AdapterPair]>) {
    out[field[target]] = { ...(p[field[target]] as Linear), lora: { a: pair.a, b: pair.b, scale } }
  }
  return out as unknown as LayerParams
}

/** The model with adapters attached (a view over both). */
export const withAdapters = (params: Params, adapters: Adapters): Params => ({
  ...params,
  layers: params.layers.map((p, i) => adaptLayer(p, adapters.layers[i], adapters.scale))
})

/**
 * The weights with the adapters folded in: w + scale · a · b for every adapted projection, as
 * new tensors; every other tensor is the input's own (shared). With `consume`, the replaced
 * weights of the input are released, so only the result is used afterwards.
 */
export const mergeAdapters = (params: Params, adapters: Adapters, options: { readonly consume?: boolean } = {}): Params => {
  const replaced: Array<tf.Tensor> = []
  const layers = params.layers.map((p, i) => {
    const out: Record<string, unknown> = { ...p }
    for (const [target, pair] of Object.entries(adapters.layers[i]) as Array<[AdapterTarget, AdapterPair]>) {
      const linear = p[field[target]] as Linear
      const w = tf.tidy(() => tf.add(linear.w, tf.mul(tf.matMul(pair.a, pair.b), adapters.scale))) as tf.Tensor2D
      replaced.push(linear.w)
      out[field[target]] = linear.b === undefined ? { w } : { w, b: linear.b }
    }
    return out as unknown as LayerParams
  })
  if (options.consume === true) tf.dispose(replaced)
  return { ...params, layers }
}

/** A source whose blocks come with the adapters attached (the forward of the adapted model). */
export const adaptedSource = <E>(source: WeightSource<E>, adapters: Adapters): WeightSource<E> => ({
  ...source,
  layer: (i) => Effect.map(source.layer(i), (p) => adaptLayer(p, adapters.layers[i], adapters.scale))
})

/**
 * The mean next-token loss of a batch and its gradients with respect to every adapter tensor
 * (`adapterTensors` order), through the whole graph. The caller disposes the gradients.
 */
export const adapterGradients = (
  config: ModelConfig,
  params: Params,
  adapters: Adapters,
  batch: TokenBatch
): Effect.Effect<{ readonly loss: number; readonly grads: Array<tf.Tensor> }> =>
  Effect.suspend(() => {
    const { value, grads } = tf.tidy(() => {
      const ids = tf.tensor2d(batch.ids, [batch.batchSize, batch.seqLen], "int32")
      const weights = batch.weights === undefined ? undefined : tf.tensor2d(batch.weights, [batch.batchSize, batch.seqLen - 1])
      const tensors = adapterTensors(adapters).map((t) => t.tensor)
      const f = (...xs: Array<tf.Tensor>) => nextTokenLoss(config, withAdapters(params, withTensors(adapters, xs)), ids, weights)
      return tf.valueAndGrads(f)(tensors)
    })
    // The loss is read after the tidy (it cannot span an await), then released.
    return Effect.map(readScalar(value, true), (loss) => ({ loss, grads }))
  })

/**
 * The same gradients block by block (see blockwiseBackward): the frozen weights come from
 * `source` one block at a time, each block is recomputed from its stored input and
 * differentiated with respect to its input and its adapters. Gradients of the batches' mean
 * losses are summed over the batches.
 */
export const blockwiseAdapterGradients = Effect.fnUntraced(function*<E>(
  source: WeightSource<E>,
  adapters: Adapters,
  batches: ReadonlyArray<LossBatch>,
  options: Pick<BackwardOptions, "onBlock" | "microBatchOverheadFlops"> = {}
): Effect.fn.Return<{ readonly losses: ReadonlyArray<number>; readonly grads: Array<tf.Tensor> }, E | MemoryBudgetExceeded> {
  const { config } = source
  const targets = adapters.spec.targets
  const perLayer: Array<Array<tf.Tensor> | undefined> = config.layers.map(() => undefined)
  const losses = yield* blockwiseBackward(adaptedSource(source, adapters), batches, (layer, _, weights, input, context, upstream) => {
    const pairs = adapters.layers[layer]
    const own = targets.flatMap((t) => [pairs[t]!.a, pairs[t]!.b])
    const [dx, ...grads] = tf.tidy(() => {
      const block = (x: tf.Tensor, ...xs: Array<tf.Tensor>) => {
        const rebuilt = Object.fromEntries(targets.map((t, k) => [t, { a: xs[2 * k] as tf.Tensor2D, b: xs[2 * k + 1] as tf.Tensor2D }]))
        return decoderBlock(config, layer, adaptLayer(weights, rebuilt, adapters.scale), x as tf.Tensor2D, context).h
      }
      return tf.grads(block)([input, ...own], upstream)
    })
    const previous = perLayer[layer]
    perLayer[layer] = previous === undefined ? grads : grads.map((g, k) => {
      const sum = tf.add(previous[k], g)
      tf.dispose([previous[k], g])
      return sum
    })
    return dx as tf.Tensor2D
  }, options).pipe(Effect.onError(() => Effect.sync(() => tf.dispose(perLayer.flatMap((g) => g ?? [])))))
  return { losses, grads: perLayer.flatMap((g) => g!) }
})
