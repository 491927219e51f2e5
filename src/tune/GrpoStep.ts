/**
 * One GRPO step: a batch of prompts from the data, `rollouts` sampled completions of each, their
 * rewards, advantages normalised within each prompt's group, the reference model's log-probs
 * for the KL penalty, then `ppoEpochs` optimizer updates on that rollout batch (the first one
 * on-policy, so its ratios are 1; later ones clipped against the rollout policy).
 *
 * Like the SFT trainer's step, it is a function of its state — weights, optimizer moments,
 * data cursor and sampling generator — so a tuning saved after any step and resumed replays
 * exactly. It consumes the input state when it succeeds; a failure (a NaN loss, a reward that
 * fails) leaves the input state as it was. A NaN loss in a later PPO epoch ends the step's
 * updates early instead (metric `ppoEpochs`), since the input weights are gone by then.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { InferenceEngine } from "../compute/Inference.ts"
import type { Tokenizer } from "../io/Tokenizer.ts"
import type { Model } from "../model/Model.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import { Rng, type RngState } from "../model/Rng.ts"
import type { Reward, RewardPrompt } from "../reward/Reward.ts"
import type { AdamWState } from "./AdamW.ts"
import { type DataCursor, takeExamples } from "./Batches.ts"
import { buildRolloutBatch, grpoLossAndGradients, sequenceLogProbs } from "./GrpoLoss.ts"
import { groupAdvantages } from "./GrpoObjective.ts"
import { optimizerUpdate, type UpdateOptions } from "./OptimizerUpdate.ts"
import { openRolloutDecoder, sampleRollouts } from "./Rollouts.ts"
import { NonFiniteLoss } from "./Trainer.ts"

export interface GrpoSettings {
  /** Prompts per step; each gets `rollouts` completions. */
  readonly promptsPerStep: number
  readonly rollouts: number
  readonly temperature: number
  readonly topP: number
  readonly maxNewTokens: number
  /** Longest prompt + completion: a long prompt's completions get fewer new tokens. */
  readonly maxSeqLen?: number
  /** PPO's ε. */
  readonly clip: number
  /** β of the k3 KL penalty to the reference. */
  readonly klCoef: number
  /** Optimizer updates per rollout batch. */
  readonly ppoEpochs: number
  /** Sequences sampled together (bounds the KV cache); all of a step's by default. */
  readonly rolloutBatchSize?: number
  readonly update: UpdateOptions
}

/** A prompt to sample from: what the reward grades against, and its token ids. */
export interface GrpoPrompt {
  readonly example: RewardPrompt
  readonly ids: ReadonlyArray<number>
}

export interface GrpoState {
  readonly params: Params
  readonly optimizer: AdamWState
  readonly cursor: DataCursor
  /** The sampling generator. */
  readonly rng: RngState
}

export interface GrpoContext<E, R> {
  /** The frozen reference of the KL penalty (the model at the start of the tuning). */
  readonly reference: Model
  readonly reward: Reward<E, R>
  readonly tokenizer: Tokenizer
  /** The engine rollouts are sampled on (Rollouts.ts); default tfjs. */
  readonly rollouts?: InferenceEngine
}

export interface GrpoReport {
  /** Mean loss over the step's updates. */
  readonly loss: number
  /** Completion tokens sampled. */
  readonly tokens: number
  /**
   * reward (mean), reward.<part> (mean of each part), accuracy (mean of the reward's `correct`
   * part, when it has one), kl, clipFraction, completionLength, rolloutTokensPerSecond, lr,
   * gradNorm (of the last update).
   */
  readonly metrics: Readonly<Record<string, number>>
}

const mean = (values: ReadonlyArray<number>) => values.reduce((a, b) => a + b, 0) / Math.max(values.length, 1)

/** The mean of the reward's `correct` part (a rule reward's, or one inside a weighted sum), if it has exactly one. */
const accuracyOf = (parts: Readonly<Record<string, ReadonlyArray<number>>>): number | undefined => {
  const correct = Object.keys(parts).filter((name) => name === "correct" || name.endsWith(".correct"))
  return correct.length === 1 ? mean(parts[correct[0]]) : undefined
}

export const grpoStep = <E, R>(
  config: ModelConfig,
  state: GrpoState,
  prompts: ReadonlyArray<GrpoPrompt>,
  context: GrpoContext<E, R>,
  settings: GrpoSettings
): Effect.Effect<{ readonly state: GrpoState; readonly report: GrpoReport }, E | NonFiniteLoss, R> =>
  Effect.gen(function*() {
    const taken = takeExamples(prompts, state.cursor, settings.promptsPerStep)
    const rng = Rng.fromState(state.rng)
    const started = performance.now()
    // The policy as it is now, on the run's engine: an ort session lives for these rollouts only.
    const rollouts = yield* Effect.scoped(Effect.gen(function*() {
      const decoder = yield* openRolloutDecoder({ config, params: state.params }, context.rollouts ?? "tfjs")
      return yield* sampleRollouts(decoder, taken.batch.map((p) => p.ids), {
        rollouts: settings.rollouts,
        temperature: settings.temperature,
        topP: settings.topP,
        maxNewTokens: settings.maxNewTokens,
        ...(settings.maxSeqLen !== undefined ? { maxSeqLen: settings.maxSeqLen } : {}),
        stopTokens: context.tokenizer.eosId !== undefined ? [context.tokenizer.eosId] : [],
        ...(settings.rolloutBatchSize !== undefined ? { batchSize: settings.rolloutBatchSize } : {})
      }, rng)
    }))
    const sampled = rollouts.reduce((n, r) => n + r.completion.length, 0)
    const rolloutSeconds = (performance.now() - started) / 1000
    yield* Effect.yieldNow
    const scores = yield* context.reward.scoreParts(
      rollouts.map((r) => taken.batch[r.prompt].example),
      rollouts.map((r) => context.tokenizer.decode(r.completion, { skipSpecialTokens: true }))
    )
    const batch = buildRolloutBatch(
      taken.batch.map((p) => p.ids),
      rollouts,
      groupAdvantages(scores.total, settings.rollouts),
      context.tokenizer.padId ?? 0
    )
    const reference = yield* sequenceLogProbs(context.reference.config, context.reference.params, batch, settings.temperature)
    let params = state.params
    let optimizer = state.optimizer
    const losses: Array<number> = []
    const kls: Array<number> = []
    const clipFractions: Array<number> = []
    let lr = 0
    let gradNorm = 0
    for (let epoch = 0; epoch < settings.ppoEpochs; epoch++) {
      yield* Effect.yieldNow
      const result = yield* grpoLossAndGradients(config, params, batch, reference, {
        clip: settings.clip,
        klCoef: settings.klCoef,
        temperature: settings.temperature
      })
      if (!Number.isFinite(result.loss)) {
        tf.dispose(result.grads)
        // A later epoch's weights were made by this step: the step ends with the epochs done so
        // far (and the next step's first epoch will fail if the weights themselves are broken).
        if (epoch > 0) break
        const step = optimizer.step + 1
        return yield* new NonFiniteLoss({
          step,
          loss: result.loss,
          message: `The GRPO loss became ${result.loss} at optimizer step ${step}; the weights of the previous step are ` +
            "kept. Lower the learning rate, or check the reward for NaN/Inf values."
        })
      }
      const update = yield* optimizerUpdate(config, params, optimizer, result.grads, settings.update)
      params = update.params
      optimizer = update.optimizer
      lr = update.lr
      gradNorm = update.gradNorm
      losses.push(result.loss)
      kls.push(result.kl)
      clipFractions.push(result.clipFraction)
    }
    const metrics: Record<string, number> = { reward: mean(scores.total) }
    for (const [name, values] of Object.entries(scores.parts)) metrics[`reward.${name}`] = mean(values)
    const accuracy = accuracyOf(scores.parts)
    if (accuracy !== undefined) metrics.accuracy = accuracy
    Object.assign(metrics, {
      kl: mean(kls),
      clipFraction: mean(clipFractions),
      ppoEpochs: losses.length,
      completionLength: sampled / rollouts.length,
      rolloutTokensPerSecond: sampled / Math.max(rolloutSeconds, 1e-9),
      lr,
      gradNorm
    })
    return {
      state: { params, optimizer, cursor: taken.cursor, rng: rng.state() },
      report: { loss: mean(losses), tokens: sampled, metrics }
    }
  }).pipe(Effect.withSpan("Grpo.step"))
