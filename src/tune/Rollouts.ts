/**
 * GRPO's rollouts: `rollouts` completions of every prompt, sampled in one batch with the KV
 * cache at a temperature (and top-p), each token with its log-probability under the sampling
 * policy — log softmax(logits / temperature), the distribution the policy gradient differentiates
 * (top-p truncation is not part of it, as in TRL and verl). Sampling draws from the generator it
 * is given, so a saved generator state replays the same rollouts.
 *
 * The policy's forward passes run on tfjs or, when the run reads models with ort, on an ONNX
 * Runtime session opened on the policy's weights for the step's rollouts (`openRolloutDecoder`).
 */
import { Effect } from "effect"
import type { InferenceEngine } from "../compute/Inference.ts"
import type { Model } from "../model/Model.ts"
import { decode } from "../model/Generate.ts"
import { Rng } from "../model/Rng.ts"
import { sampleToken, type SamplingOptions } from "../model/Sampling.ts"
import { openModelSession } from "../onnx/ModelSession.ts"
import { decodeOrt } from "../onnx/OrtGenerate.ts"

export interface Rollout {
  /** Index of the prompt it answers. */
  readonly prompt: number
  /** Sampled ids, the stop token included when one was emitted. */
  readonly completion: ReadonlyArray<number>
  /** log p(token) of each completion id under the sampling policy. */
  readonly logProbs: ReadonlyArray<number>
}

export interface RolloutOptions extends SamplingOptions {
  /** Completions per prompt (the group). */
  readonly rollouts: number
  readonly maxNewTokens: number
  /** Longest prompt + completion: a long prompt's completions get fewer new tokens. */
  readonly maxSeqLen?: number
  readonly stopTokens: ReadonlyArray<number>
  /** Sequences decoded together (the KV cache holds this many); all of them by default. */
  readonly batchSize?: number
}

/**
 * The policy's decoding loop on one engine: the new tokens of each prompt, `choose` picking
 * sequence b's next token from its row of logits, up to its budget or a stop token
 * (Generate.ts's `decode`).
 */
export type RolloutDecoder = (
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  budgets: ReadonlyArray<number>,
  stopTokens: ReadonlyArray<number>,
  choose: (logits: Float32Array, b: number) => number
) => Effect.Effect<Array<Array<number>>>

export const tfjsRolloutDecoder = (policy: Model): RolloutDecoder => (prompts, budgets, stopTokens, choose) =>
  decode(policy.config, policy.params, prompts, budgets, stopTokens, choose)

/**
 * The decoder on `inference`; an ort session on the policy's weights as they are now lives
 * until the scope closes. A temporary model file that cannot be written (a model beyond the
 * protobuf limit goes through one) ends the step as a defect: GRPO's errors are its reward's.
 */
export const openRolloutDecoder = (policy: Model, inference: InferenceEngine) =>
  inference === "ort"
    ? Effect.map(Effect.orDie(openModelSession(policy, { logits: "last" })), (session): RolloutDecoder => (prompts, budgets, stopTokens, choose) =>
      Effect.promise(() => decodeOrt(session, policy.config, prompts, budgets, stopTokens, choose)))
    : Effect.succeed(tfjsRolloutDecoder(policy))

/** log softmax(logits / temperature)[token], in float64; temperature 0 (greedy) reads the plain logits. */
export const tokenLogProb = (logits: ArrayLike<number>, token: number, temperature: number): number => {
  const scale = temperature > 0 ? 1 / temperature : 1
  let max = -Infinity
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i] * scale)
  let sum = 0
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] * scale - max)
  return logits[token] * scale - max - Math.log(sum)
}

/**
 * `options.rollouts` completions of each prompt, grouped: prompt i's are rollouts
 * i·G .. i·G + G − 1. Each sequence samples from a generator of its own, seeded by one draw
 * from `rng` (which advances by one draw per sequence), so the rollouts do not depend on how
 * many sequences are decoded together.
 */
export const sampleRollouts = (
  decoder: RolloutDecoder,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  options: RolloutOptions,
  rng: Rng
): Effect.Effect<Array<Rollout>> => Effect.gen(function*() {
  const sequences = prompts.flatMap((prompt, i) => Array.from({ length: options.rollouts }, () => ({ prompt: i, ids: prompt })))
  const generators = sequences.map(() => Rng.seeded(rng.nextUint32()))
  const batchSize = options.batchSize ?? sequences.length
  const out: Array<Rollout> = []
  for (let start = 0; start < sequences.length; start += batchSize) {
    const batch = sequences.slice(start, start + batchSize)
    const logProbs: Array<Array<number>> = batch.map(() => [])
    const budgets = batch.map((s) => Math.min(options.maxNewTokens, (options.maxSeqLen ?? Infinity) - s.ids.length))
    const completions = yield* decoder(batch.map((s) => s.ids), budgets, options.stopTokens, (row, b) => {
      const token = sampleToken(row, options, generators[start + b])
      logProbs[b].push(tokenLogProb(row, token, options.temperature))
      return token
    })
    batch.forEach((s, b) => out.push({ prompt: s.prompt, completion: completions[b], logProbs: logProbs[b] }))
  }
  return out
})
