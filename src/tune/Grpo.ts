/**
 * GRPO as a Tuner — PTL's recovery option B (reinforcement learning through EasyR1): each step
 * samples `rollouts` completions of a batch of the iteration's prompts, scores them with the
 * reward, normalises the rewards within each prompt's group, and takes `ppoEpochs` clipped
 * policy-gradient updates with a KL penalty to a frozen reference — the model as this tuning
 * started (see GrpoStep.ts and GrpoObjective.ts for the arithmetic).
 *
 * The reward is the RewardModel service (the plan's `reward:` list) unless the program gives
 * the tuner a reward of its own, whose error type then shows in the tuner's. The saved state is
 * the step counts, the data cursor and the sampling generator; the AdamW moments and the
 * reference's weights go with it as tensors, so a resumed tuning computes exactly what the
 * uninterrupted one would have.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Result, Schema, type Scope } from "effect"
import { decodingBytes, footprint, gradientBytes, weightBytes } from "../model/Footprint.ts"
import { ortSessionBytes } from "../onnx/GraphSession.ts"
import type { InferenceEngine } from "../compute/Inference.ts"
import type { Model } from "../model/Model.ts"
import { disposeParams, paramTensors } from "../model/Params.ts"
import { Rng } from "../model/Rng.ts"
import type { Reward } from "../reward/Reward.ts"
import { type RewardError, RewardModel } from "../services/RewardModel.ts"
import { encodePrompt } from "../tasks/Encode.ts"
import { defaultAdamW, initAdamW } from "./AdamW.ts"
import { type DataCursor, startCursor } from "./Batches.ts"
import { type GrpoPrompt, type GrpoSettings, type GrpoState, grpoStep } from "./GrpoStep.ts"
import { warmupCosine } from "./Schedule.ts"
import type { NonFiniteLoss } from "./Trainer.ts"
import { InvalidTunerState, type TuneContext, type Tuner } from "./Tuner.ts"
import { openWeightsSession } from "./TunerSession.ts"
import { CursorSchema, momentTensors, paramsFrom, restoreMoments, restoreWeightShaped, RngStateSchema, weightShapedTensors } from "./TunerState.ts"
import { NonNegative, optimizerFields, Positive, PositiveInt, stepsField, withDefault } from "./TunerSettings.ts"
import { drawExamples, NoTrainingData } from "./TuningData.ts"

/** The `tuner:` entry of a plan for GRPO; the defaults are the reference recipe's where it has one. */
export const GrpoConfig = Schema.Struct({
  kind: Schema.Literal("grpo"),
  /** Rollout batches per iteration. */
  ...stepsField(20),
  /** Prompts per step; each gets `rollouts` completions. */
  prompts: PositiveInt.pipe(withDefault(8)),
  /** Completions per prompt: the group its advantages are normalised in. */
  rollouts: Schema.Int.check(Schema.isGreaterThanOrEqualTo(2)).pipe(withDefault(8)),
  temperature: Positive.pipe(withDefault(1)),
  topP: Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1)).pipe(withDefault(1)),
  /** New tokens per completion at most (fewer when prompt + completion would pass maxSeqLen). */
  maxNewTokens: PositiveInt.pipe(withDefault(64)),
  /** PPO's clipping ε. */
  clip: Positive.pipe(withDefault(0.2)),
  /** Coefficient of the k3 KL penalty to the reference. */
  klCoef: NonNegative.pipe(withDefault(0.01)),
  /** Optimizer updates per rollout batch (the schedule runs over all of them: steps × ppoEpochs). */
  ppoEpochs: PositiveInt.pipe(withDefault(1)),
  ...optimizerFields(5e-5),
  /** Sequences sampled together (bounds the KV cache); a whole step's by default. */
  rolloutBatchSize: Schema.optionalKey(PositiveInt)
})
export type GrpoConfig = typeof GrpoConfig.Type

/** What a snapshot of a GRPO tuning holds besides the moments and the reference. */
const GrpoSnapshotState = Schema.Struct({
  /** Rollout batches done. */
  step: Schema.Int,
  /** Optimizer updates done (fewer than step × ppoEpochs when a later epoch stopped early). */
  updates: Schema.Int,
  cursor: CursorSchema,
  rng: RngStateSchema
})
const encodeState = Schema.encodeSync(GrpoSnapshotState)
const decodeState = Schema.decodeUnknownResult(GrpoSnapshotState)

export type GrpoError<E> = E | NonFiniteLoss | NoTrainingData

/** The step's settings for a tuning of `steps` rollout batches. */
export const grpoSettings = (config: GrpoConfig, steps: number): GrpoSettings => ({
  promptsPerStep: config.prompts,
  rollouts: config.rollouts,
  temperature: config.temperature,
  topP: config.topP,
  maxNewTokens: config.maxNewTokens,
  maxSeqLen: config.maxSeqLen,
  clip: config.clip,
  klCoef: config.klCoef,
  ppoEpochs: config.ppoEpochs,
  ...(config.rolloutBatchSize !== undefined ? { rolloutBatchSize: config.rolloutBatchSize } : {}),
  update: {
    schedule: warmupCosine(config.lr, steps * config.ppoEpochs, config.warmupFraction),
    optimizer: { ...defaultAdamW, weightDecay: config.weightDecay },
    maxGradNorm: config.maxGradNorm
  }
})

/**
 * Device memory at the peak of a GRPO step: the weights, their moments and the frozen reference
 * throughout; on top, the largest of sampling (the KV cache of every sequence sampled together:
 * `rolloutBatchSize`), the gradient pass over all of the step's prompts × rollouts sequences at
 * once, and the update's copies. The refusal names the keys of whichever is largest.
 */
export const grpoFootprint = (config: GrpoConfig) => (shape: Model["config"], host?: { readonly inference: InferenceEngine }) => {
  const w = weightBytes(shape)
  const sequences = config.prompts * config.rollouts
  const sampledTogether = Math.min(config.rolloutBatchSize ?? sequences, sequences)
  const [part, bytes, lower] = [
    [
      `rollout cache (${sampledTogether} sequences sampled together)`,
      decodingBytes(shape, sampledTogether, config.maxSeqLen),
      "Lower tuner.rolloutBatchSize (the sequences sampled together) or tuner.maxSeqLen"
    ] as const,
    [
      `gradients and activations (${sequences} sequences)`,
      gradientBytes(shape, sequences, config.maxSeqLen),
      `Lower tuner.prompts or tuner.rollouts (the gradient pass covers prompts × rollouts = ${sequences} sequences at once; ` +
      "tuner.rolloutBatchSize bounds sampling only) or tuner.maxSeqLen"
    ] as const,
    ["update's copies of the weights", 3 * w, "No tuner setting lowers the weights' copies a GRPO step holds (moments, reference, the update's)"] as const
  ].reduce((a, b) => (b[1] > a[1] ? b : a))
  return footprint({
    weights: w,
    "optimizer moments": 2 * w,
    "reference model": w,
    // Where rollouts are sampled on ort and the budget holds it: the policy's session, opened for each step's rollouts.
    ...(host?.inference === "ort" ? { "policy's ONNX Runtime session": ortSessionBytes(shape) } : {}),
    [part]: bytes
  }, lower)
}

/**
 * The GRPO tuner scoring with `reward`: by default the RewardModel service, so a plan-driven run
 * needs that service; a program passes any `Effect` yielding a Reward of its own instead.
 */
export function grpoTuner(config: GrpoConfig): Tuner<GrpoError<RewardError>, RewardModel>
export function grpoTuner<E, R1, R2>(config: GrpoConfig, reward: Effect.Effect<Reward<E, R1>, never, R2>): Tuner<GrpoError<E>, R1 | R2>
export function grpoTuner<E, R1, R2>(
  config: GrpoConfig,
  reward?: Effect.Effect<Reward<E, R1>, never, R2>
): Tuner<GrpoError<E | RewardError>, R1 | R2 | RewardModel> {
  const source: Effect.Effect<Reward<E | RewardError, R1>, never, R2 | RewardModel> = reward ?? Effect.service(RewardModel)
  return makeGrpoTuner(config, source)
}

/** A GRPO session's state: the step's state, the rollout batches done, and the frozen reference. */
interface GrpoSessionState extends GrpoState {
  readonly step: number
  readonly reference: Model
}

const makeGrpoTuner = <E, R1, R2>(config: GrpoConfig, reward: Effect.Effect<Reward<E, R1>, never, R2>): Tuner<GrpoError<E>, R1 | R2> => {
  type R = R1 | R2
  /** A session over the state `initial` makes (its reference held in the session's scope), once there are prompts. */
  const open = Effect.fn("Grpo.open")(function*<EA>(model: Model, context: TuneContext, initial: Effect.Effect<GrpoSessionState, EA, Scope.Scope>) {
    const shape = model.config
    const room = config.maxSeqLen - 1
    const prompts: Array<GrpoPrompt> = drawExamples(context.datasets, context.chunk, context.steps * config.prompts)
      .filter((e) => e.prompt.length > 0)
      .map((example) => ({ example, ids: encodePrompt(context.tokenizer, example.prompt) }))
      .filter((p) => p.ids.length <= room)
    if (prompts.length === 0) {
      const names = context.datasets.map((d) => d.name).join(", ")
      return yield* new NoTrainingData({
        datasets: context.datasets.map((d) => d.name),
        message: `GRPO has no prompt to sample from in the training split of ${names}: it needs examples with a prompt ` +
          `shorter than maxSeqLen (${config.maxSeqLen} tokens), to leave room for a completion; plain text has none.`
      })
    }
    const rewardOf = yield* reward
    const settings = grpoSettings(config, context.steps)
    return yield* openWeightsSession<GrpoSessionState, GrpoError<E>, R, EA>({
      shape,
      steps: context.steps,
      stepsDone: (state) => state.step,
      step: (state) =>
        grpoStep(shape, state, prompts, {
          reference: state.reference,
          reward: rewardOf,
          tokenizer: context.tokenizer,
          ...(context.inference !== undefined ? { rollouts: context.inference } : {})
        }, settings).pipe(
          Effect.map(({ state: next, report }) => ({
            state: { ...next, step: state.step + 1, reference: state.reference },
            done: { step: state.step + 1, loss: report.loss, tokens: report.tokens, metrics: report.metrics }
          }))
        ),
      snapshot: (state) =>
        Effect.gen(function*() {
          const encoded = encodeState({ step: state.step, updates: state.optimizer.step, cursor: state.cursor, rng: state.rng })
          const moments = yield* momentTensors(shape, state.optimizer)
          const reference = yield* weightShapedTensors(shape, "ref", paramTensors(shape, state.reference.params))
          return { state: encoded, tensors: [...moments, ...reference] }
        })
    }, initial)
  })

  /** The reference's weights, released with the session. */
  const holdReference = <EM>(make: Effect.Effect<Model, EM>) =>
    Effect.acquireRelease(make, (reference) => Effect.sync(() => disposeParams(reference.config, reference.params)))

  return {
    kind: "grpo",
    footprint: grpoFootprint(config),
    start: (model, context) =>
      open(model, context, Effect.gen(function*() {
        // The reference is a copy of the weights the tuning starts from; the policy moves away from it.
        const reference = yield* holdReference(Effect.sync(() => ({
          config: model.config,
          params: paramsFrom(model.config, paramTensors(model.config, model.params).map((t) => tf.clone(t)))
        })))
        return {
          params: model.params,
          optimizer: initAdamW(paramTensors(model.config, model.params)),
          cursor: startCursor(context.seed),
          rng: Rng.seeded(context.seed + 1).state(),
          step: 0,
          reference
        }
      })),
    resume: (model, snapshot, context) =>
      Effect.gen(function*() {
        const invalid = (why: string) =>
          new InvalidTunerState({ kind: "grpo", message: `The saved grpo tuning state cannot be resumed: ${why}.` })
        const decoded = decodeState(snapshot.state)
        if (Result.isFailure(decoded)) return yield* invalid("its step counts, data cursor and sampling generator do not decode")
        const { step, updates, cursor, rng } = decoded.success
        return yield* open(model, context, Effect.gen(function*() {
          const reference = yield* holdReference(Effect.suspend(() => {
            const restored = restoreWeightShaped(model.config, paramTensors(model.config, model.params), snapshot.tensors, "ref", "reference weight")
            return "problem" in restored
              ? Effect.fail(invalid(restored.problem))
              : Effect.succeed({ config: model.config, params: paramsFrom(model.config, restored.tensors) })
          }))
          const moments = yield* restoreMoments(model, snapshot, invalid)
          return { params: model.params, optimizer: { step: updates, ...moments }, cursor: cursor as DataCursor, rng, step, reference }
        }))
      })
  }
}
