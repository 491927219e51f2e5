/**
 * RewardModel: the reward GRPO maximises, as a service, so that rule rewards, learned reward
 * models and weighted sums of them are Layers a run is given (layers/RewardModel.ts builds the
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
import { Context, Effect, Schema } from "effect"
import type { InvalidRewardInput, MissingPadToken } from "../reward/Errors.ts"
import type { Reward } from "../reward/Reward.ts"
import { defaultRuleWeights, RuleNames } from "../reward/RuleReward.ts"

/** What scoring can fail with: only learned reward models fail, on input they cannot read. */
export type RewardError = InvalidRewardInput | MissingPadToken

export class RewardModel extends Context.Service<RewardModel, Reward<RewardError>>()("simmer/RewardModel") {}

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
