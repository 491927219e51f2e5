/**
 * Autoregressive decoding with a KV cache: one forward over the (left-padded) prompts, then
 * one position per step, reusing the keys and values of everything already seen.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { ModelConfig } from "./ModelConfig.ts"
import type { Params } from "./Params.ts"
import { readFloats } from "./Read.ts"
import { Rng } from "./Rng.ts"
import { sampleToken, type SamplingOptions } from "./Sampling.ts"
import { tidyKeep } from "./Tidy.ts"
import { emptyCache, hiddenStates, type KvCache, lmHead } from "./Transformer.ts"

export interface GenerateOptions extends SamplingOptions {
  readonly maxNewTokens: number
  /** Seed of the sampling generator (ignored by greedy decoding). */
  readonly seed?: number
  /** A sequence stops after emitting one of these (the token is kept in its output). */
  readonly stopTokens?: ReadonlyArray<number>
}

const disposeCache = (cache: KvCache) => {
  for (const layer of cache.layers) {
    layer.k.dispose()
    layer.v.dispose()
  }
}

/**
 * Logits of the last slot of every sequence, as JS arrays (one read for the whole batch), and
 * the extended cache. `hold` receives the cache as soon as it exists, so that the caller can
 * release it however the read ends.
 */
const step = (
  config: ModelConfig,
  params: Params,
  ids: ReadonlyArray<ReadonlyArray<number>>,
  cache: KvCache,
  hold: (cache: KvCache) => void
): Effect.Effect<Array<Float32Array>> =>
  Effect.suspend(() => {
    const B = ids.length
    const T = ids[0].length
    const result = tidyKeep(() => {
      // The head on the last slot only: a prompt's full logits (batch × prompt × vocabulary) would
      // be the largest tensor of decoding, and beyond a WebGPU binding at real vocabularies.
      const out = hiddenStates(config, params, tf.tensor2d(ids.flat(), [B, T], "int32"), { cache })
      const lastHidden = tf.reshape(tf.slice(tf.reshape(out.hidden, [B, T, config.hiddenSize]), [0, T - 1, 0], [B, 1, config.hiddenSize]), [B, config.hiddenSize])
      return { last: lmHead(config, params, lastHidden as tf.Tensor2D), cache: out.cache! }
    })
    hold(result.cache)
    const V = config.vocabSize
    return Effect.map(readFloats(result.last, true), (flat) => Array.from({ length: B }, (_, b) => flat.slice(b * V, (b + 1) * V)))
  })

/**
 * The decoding loop: `choose` picks sequence b's next token from its row of logits; a sequence
 * stops after a stop token or after its budget of new tokens (`maxNewTokens`: one for all, or
 * one per prompt). Returns the new tokens of each prompt (prompts may differ in length; they are
 * left-padded).
 */
export const decode = (
  config: ModelConfig,
  params: Params,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  maxNewTokens: number | ReadonlyArray<number>,
  stopTokens: ReadonlyArray<number>,
  choose: (logits: Float32Array, b: number) => number
): Effect.Effect<Array<Array<number>>> => Effect.suspend(() => {
  if (prompts.length === 0) return Effect.succeed([])
  if (prompts.some((p) => p.length === 0)) return Effect.die(new Error("generate: every prompt needs at least one token"))
  const stop = new Set(stopTokens)
  const longest = Math.max(...prompts.map((p) => p.length))
  const padding = prompts.map((p) => longest - p.length)
  const budget = prompts.map((_, b) => (typeof maxNewTokens === "number" ? maxNewTokens : maxNewTokens[b]))
  const outputs: Array<Array<number>> = prompts.map(() => [])
  const done = budget.map((n) => n <= 0)
  if (done.every(Boolean)) return Effect.succeed(outputs)
  // The live cache, released however decoding ends (a failed or interrupted yield skips a
  // generator's finally blocks, so cleanup rides on Effect.ensuring).
  let cache: KvCache | undefined
  const hold = (next: KvCache) => {
    cache = next
  }
  return Effect.gen(function*() {
    let rows = yield* step(config, params, prompts.map((p, b) => [...new Array<number>(padding[b]).fill(0), ...p]), emptyCache(padding), hold)
    for (;;) {
      const next = rows.map((row, b) => {
        if (done[b]) return 0
        const token = choose(row, b)
        outputs[b].push(token)
        if (stop.has(token) || outputs[b].length >= budget[b]) done[b] = true
        return token
      })
      if (done.every(Boolean)) break
      const previous = cache!
      rows = yield* step(config, params, next.map((t) => [t]), previous, (extended) => {
        hold(extended)
        disposeCache(previous)
      })
    }
    return outputs
  }).pipe(Effect.ensuring(Effect.sync(() => {
    if (cache !== undefined) disposeCache(cache)
  })))
})

/** New tokens for each prompt (prompts may differ in length; they are left-padded). */
export const generate = (
  config: ModelConfig,
  params: Params,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  options: GenerateOptions
): Effect.Effect<Array<Array<number>>> =>
  Effect.suspend(() => {
    // A fresh generator per run: running the effect twice samples the same tokens.
    const rng = Rng.seeded(options.seed ?? 0)
    return decode(config, params, prompts, options.maxNewTokens, options.stopTokens ?? [], (row) => sampleToken(row, options, rng))
  })
