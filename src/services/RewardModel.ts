/**
 * RewardModel: the reward GRPO maximises, as a service, so that rule rewards, learned reward
 * models and weighted sums of them are Layers a run is given (`RewardModel.layer` builds the
 * one a plan's `reward:` list names). A program with a reward of its own error type passes that
 * reward to the tuner directly instead (see reward/Reward.ts), keeping its error in the types.
 *
 * A plan names its reward as a list whose weighted sum is the reward:
 *
 *   reward:
 *     - { rule: arith, weight: 1 }               # 0.9 · correct + 0.1 · format
 *     - { rule: arith, correct: 1, format: 0 }   # weights of the parts are configurable
 *     - { model: path/to/rm, weight: 0.5 }       # a LlamaForSequenceClassification reward model
 */
import { basename, resolve } from "node:path"
import { Context, Effect, Layer, Schema } from "effect"
import { snapshotRepo } from "../hub/HubCache.ts"
import { loadTokenizer } from "../io/Tokenizer.ts"
import { type InferenceChoice, type InferenceEngine, resolveInference } from "../compute/Inference.ts"
import { classifierReward, tfjsRewardScorer } from "../reward/ClassifierReward.ts"
import { openOrtRewardScorer } from "../reward/RewardSession.ts"
import type { InvalidRewardInput, MissingPadToken } from "../reward/Errors.ts"
import { makeReward, type Reward } from "../reward/Reward.ts"
import { disposeRewardCheckpoint, loadRewardCheckpoint, type RewardLoadError } from "../reward/RewardCheckpoint.ts"
import { defaultRuleWeights, RuleNames, ruleReward } from "../reward/RuleReward.ts"
import { weightedSum } from "../reward/WeightedReward.ts"
import { Compute } from "./Compute.ts"

/** What scoring can fail with: only learned reward models fail, on input they cannot read. */
export type RewardError = InvalidRewardInput | MissingPadToken

export class RewardModel extends Context.Service<RewardModel, Reward<RewardError>>()("simmer/RewardModel") {
  /**
   * The weighted sum `refs` describe (none when the list is empty). Rule rewards are pure; each
   * learned reward model is loaded (with its tokenizer) when the layer is built and released
   * when it closes, and scores on the run's inference engine (`inference`, else
   * SIMMER_INFERENCE, else auto beside the backend, as the run's evaluation resolves it): on ort
   * through one ONNX Runtime session it keeps as long. Requires Compute so that no tensor exists
   * before the backend.
   */
  static readonly layer = (refs: ReadonlyArray<RewardRef>, inference?: InferenceChoice): Layer.Layer<RewardModel, RewardLoadError, Compute> =>
    Layer.effect(
      RewardModel,
      Effect.gen(function*() {
        const compute = yield* Compute
        if (refs.length === 0) return RewardModel.of(noReward)
        const engine = yield* resolveInference(inference, compute.backend)
        const components = yield* Effect.forEach(refs, (ref) => component(ref, engine))
        return RewardModel.of(weightedSum(components))
      })
    )
}

const withDefault = <S extends Schema.Top>(value: S["Encoded"]) => Schema.withDecodingDefaultKey<S>(Effect.succeed(value))

/** A rule reward of the task graders (see reward/RuleReward.ts), with the weights of its parts. */
export const RuleRewardRef = Schema.Struct({
  rule: Schema.Literals(RuleNames),
  weight: Schema.Finite.pipe(withDefault(1)),
  correct: Schema.Finite.pipe(withDefault(defaultRuleWeights.correct)),
  format: Schema.Finite.pipe(withDefault(defaultRuleWeights.format))
})

/** A learned reward model: a sequence-classification checkpoint folder with a tokenizer.json. */
export const ModelRewardRef = Schema.Struct({
  model: Schema.NonEmptyString,
  weight: Schema.Finite.pipe(withDefault(1)),
  /** Sequences per forward pass of the reward model. */
  batchSize: Schema.Int.check(Schema.isGreaterThan(0)).pipe(withDefault(16))
})

export const RewardRef = Schema.Union([RuleRewardRef, ModelRewardRef])
export type RewardRef = typeof RewardRef.Type

/** A plan's `reward:`: the weighted sum of one or more rewards. */
export const RewardSpec = Schema.NonEmptyArray(RewardRef)
export type RewardSpec = typeof RewardSpec.Type

const component = (ref: RewardRef, engine: InferenceEngine) =>
  "rule" in ref
    ? Effect.succeed({ reward: ruleReward(ref.rule, { correct: ref.correct, format: ref.format }), weight: ref.weight })
    : Effect.gen(function*() {
      const model = yield* Effect.acquireRelease(
        loadRewardCheckpoint(ref.model),
        (loaded) => Effect.sync(() => disposeRewardCheckpoint(loaded))
      )
      const tokenizer = yield* loadTokenizer(ref.model)
      // Named after its folder (a Hub snapshot's: its repository), so the reward's parts say which model scored them.
      const name = snapshotRepo(ref.model)?.split("/")[1] ?? basename(resolve(ref.model))
      const scorer = engine === "ort" ? yield* openOrtRewardScorer(model) : tfjsRewardScorer(model)
      return { reward: classifierReward(model, tokenizer, { name, batchSize: ref.batchSize, scorer }), weight: ref.weight }
    })

/**
 * A plan without `reward:` has no reward. Plan validation refuses a grpo tuner without one, so
 * scoring here is a bug, not bad input.
 */
const noReward = makeReward("none", () =>
  Effect.die(new Error("no reward was configured (the plan has no reward:), yet a tuner asked for one")))
