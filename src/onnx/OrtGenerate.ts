/**
 * Batched decoding in ONNX Runtime with the graph's key/value cache: one pass over the
 * left-padded prompts (padding masked out, positions counted from each prompt's first token, as
 * model/Generate.ts does), then one token per step with the cache of keys and values
 * (KeyValueCache.ts). Tokens are chosen as Generate.ts's `decode` chooses them (a callback per
 * row, in row order, greedy or sampled), and a finished sequence keeps feeding token 0 as there.
 */
import { Effect } from "effect"
import type { GreedyDecoder } from "../eval/GreedyDecoder.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { argmax } from "../model/Sampling.ts"
import { type DecoderSession, runDecoder } from "./OrtDecoder.ts"

/** The new tokens of each prompt: `choose` picks sequence b's next token from its row of logits, up to its budget (`maxNewTokens`: one for all, or one per prompt) or a stop token. */
export const decodeOrt = async (
  session: DecoderSession,
  config: ModelConfig,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  maxNewTokens: number | ReadonlyArray<number>,
  stopTokens: ReadonlyArray<number>,
  choose: (logits: Float32Array, b: number) => number
): Promise<Array<Array<number>>> => {
  const outputs: Array<Array<number>> = prompts.map(() => [])
  const budget = prompts.map((_, b) => (typeof maxNewTokens === "number" ? maxNewTokens : maxNewTokens[b]))
  const done = budget.map((n) => n <= 0)
  if (prompts.length === 0 || done.every(Boolean)) return outputs
  if (prompts.some((p) => p.length === 0)) throw new Error("generate: every prompt needs at least one token")
  const stop = new Set(stopTokens)
  const V = config.vocabSize
  const longest = Math.max(...prompts.map((p) => p.length))
  const padding = prompts.map((p) => longest - p.length)
  const attentionMask = padding.map((pad) => Array.from({ length: longest }, (_, j) => (j < pad ? 0 : 1)))
  let step = await runDecoder(session, config, {
    ids: prompts.map((p, b) => [...new Array<number>(padding[b]).fill(0), ...p]),
    capacity: longest + Math.max(...budget),
    attentionMask,
    positions: padding.map((pad) => Array.from({ length: longest }, (_, j) => Math.max(j - pad, 0)))
  })
  for (let slot = longest; ; slot++) {
    // Every position's logits, or only the last's (a graph with `logits: "last"`).
    const T = step.logits.length / (prompts.length * V)
    const next = prompts.map((_, b) => {
      if (done[b]) return 0
      const at = (b * T + T - 1) * V
      const token = choose(step.logits.subarray(at, at + V), b)
      outputs[b].push(token)
      if (stop.has(token) || outputs[b].length >= budget[b]) done[b] = true
      return token
    })
    if (done.every(Boolean)) return outputs
    for (const row of attentionMask) row.push(1)
    step = await runDecoder(session, config, {
      ids: next.map((t) => [t]),
      cache: step.cache,
      attentionMask,
      positions: padding.map((pad) => [slot - pad])
    })
  }
}

export const generateGreedyOrt = (
  session: DecoderSession,
  config: ModelConfig,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  maxNewTokens: number,
  stopTokens: ReadonlyArray<number>
): Promise<Array<Array<number>>> => decodeOrt(session, config, prompts, maxNewTokens, stopTokens, argmax)

/** ONNX Runtime's memory is its own, outside the tfjs device's budget. */
export const ortGreedyDecoder = (session: DecoderSession, config: ModelConfig): GreedyDecoder => ({
  onDevice: false,
  decode: (prompts, options) => Effect.promise(() => generateGreedyOrt(session, config, prompts, options.maxNewTokens, options.stopTokens))
})
