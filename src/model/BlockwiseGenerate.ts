/**
 * Decoding a model that does not fit the device: for every new token, each decoder block's
 * weights are fetched from a WeightSource (read from the shards and uploaded after a fit check),
 * applied with that block's key/value cache, and released; the next token's logits come from the
 * LM head in vocabulary chunks. Device memory holds one block plus the cache, so any depth
 * decodes, at the price of reading every weight once per token. Same sampling as `generate`.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { MemoryBudgetExceeded } from "./Footprint.ts"
import { ensureBlockFits } from "./Blockwise.ts"
import { vocabChunk } from "./ChunkedLoss.ts"
import type { GenerateOptions } from "./Generate.ts"
import { readFloats } from "./Read.ts"
import { Rng } from "./Rng.ts"
import { sampleToken } from "./Sampling.ts"
import { blockContext, decoderBlock, rmsNorm } from "./Transformer.ts"
import { releaseLayer, type WeightSource } from "./WeightSource.ts"

/** Logits [V] of one final hidden state [1, D] (normalised), chunk by chunk. */
const lastLogits = <E>(source: WeightSource<E>, final: tf.Tensor2D) =>
  Effect.gen(function*() {
    const V = source.config.vocabSize
    const chunk = vocabChunk(1, V)
    const logits = new Float32Array(V)
    for (let first = 0; first < V; first += chunk) {
      const count = Math.min(chunk, V - first)
      const rows = yield* source.headRows(first, count)
      const part = tf.tidy(() => tf.matMul(final, rows, false, true))
      rows.dispose()
      logits.set(yield* readFloats(part, true), first)
    }
    return logits
  })

/** New tokens after `prompt`, decoded block by block (one sequence). */
export const generateBlockwise = Effect.fnUntraced(function*<E>(
  source: WeightSource<E>,
  prompt: ReadonlyArray<number>,
  options: GenerateOptions & { readonly onToken?: (done: number, total: number) => void }
): Effect.fn.Return<Array<number>, E | MemoryBudgetExceeded> {
  if (prompt.length === 0) return yield* Effect.die(new Error("generateBlockwise: the prompt needs at least one token"))
  const { config } = source
  const rng = Rng.seeded(options.seed ?? 0)
  const stop = new Set(options.stopTokens ?? [])
  const cache: Array<{ k: tf.Tensor4D; v: tf.Tensor4D } | undefined> = config.layers.map(() => undefined)
  const outputs: Array<number> = []
  // Everything on the device between yields, released however the decoding ends (a yield that
  // fails does not run a generator's finally blocks, so cleanup rides on Effect.ensuring).
  const held: { h?: tf.Tensor2D; context?: ReturnType<typeof blockContext> } = {}
  const release = Effect.sync(() => {
    tf.dispose([
      ...(held.h === undefined ? [] : [held.h]),
      ...(held.context === undefined ? [] : [held.context.rope.cos, held.context.rope.sin]),
      ...cache.flatMap((c) => (c === undefined ? [] : [c.k, c.v]))
    ])
  })
  yield* Effect.gen(function*() {
    let ids = [...prompt]
    let past = 0
    for (let n = 0; n < options.maxNewTokens; n++) {
      const T = ids.length
      const context = blockContext(config, 1, T, [0], past)
      held.context = context
      held.h = yield* source.embed(Int32Array.from(ids))
      for (let layer = 0; layer < config.layers.length; layer++) {
        yield* ensureBlockFits(source.room, config, layer, [{ ids: new Int32Array(0), batchSize: 1, seqLen: past + T }])
        const weights = yield* source.layer(layer)
        const previous = cache[layer]
        const input: tf.Tensor2D = held.h
        const out = tf.tidy(() => {
          const o = decoderBlock(config, layer, weights, input, context, { past: previous })
          return { h: o.h, k: o.k, v: o.v }
        })
        releaseLayer(weights)
        tf.dispose([input, ...(previous === undefined ? [] : [previous.k, previous.v])])
        cache[layer] = { k: out.k, v: out.v }
        held.h = out.h
      }
      const norm = yield* source.norm
      const last: tf.Tensor2D = held.h
      const final = tf.tidy(() => rmsNorm(tf.slice(last, [T - 1, 0], [1, config.hiddenSize]), norm, config.rmsNormEps))
      tf.dispose([norm, last, context.rope.cos, context.rope.sin])
      held.h = undefined
      held.context = undefined
      const logits = yield* lastLogits(source, final).pipe(Effect.ensuring(Effect.sync(() => final.dispose())))
      const token = sampleToken(logits, options, rng)
      outputs.push(token)
      options.onToken?.(n + 1, options.maxNewTokens)
      if (stop.has(token)) break
      past += T
      ids = [token]
    }
  }).pipe(Effect.ensuring(release))
  return outputs
})
