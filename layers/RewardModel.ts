/**
 * Live RewardModel: the weighted sum a plan's `reward:` list names. Rule rewards are pure; each
 * learned reward model is loaded (with its tokenizer) when the layer is built and released when
 * it closes.
 */
import { basename, resolve } from "node:path"
import { Effect, Layer } from "effect"
import { snapshotRepo } from "../src/hub/HubCache.ts"
import { loadTokenizer } from "../src/io/Tokenizer.ts"
import { classifierReward } from "../src/reward/ClassifierReward.ts"
import { makeReward } from "../src/reward/Reward.ts"
import { disposeRewardCheckpoint, loadRewardCheckpoint, type RewardLoadError } from "../src/reward/RewardCheckpoint.ts"
import { ruleReward } from "../src/reward/RuleReward.ts"
import { weightedSum } from "../src/reward/WeightedReward.ts"
import { Compute } from "../src/services/Compute.ts"
import { RewardModel, type RewardRef } from "../src/services/RewardModel.ts"

const component = (ref: RewardRef) =>
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
      return { reward: classifierReward(model, tokenizer, { name, batchSize: ref.batchSize }), weight: ref.weight }
    })

/**
 * A plan without `reward:` has no reward. Plan validation refuses a grpo tuner without one, so
 * scoring here is a bug, not bad input.
 */
const noReward = makeReward("none", () =>
  Effect.die(new Error("no reward was configured (the plan has no reward:), yet a tuner asked for one")))

/**
 * The reward `refs` describe (none when the list is empty); requires Compute so that no tensor
 * exists before the backend.
 */
export const RewardModelLive = (refs: ReadonlyArray<RewardRef>): Layer.Layer<RewardModel, RewardLoadError, Compute> =>
  Layer.effect(
    RewardModel,
    Effect.gen(function*() {
      yield* Compute
      if (refs.length === 0) return RewardModel.of(noReward)
      const components = yield* Effect.forEach(refs, component)
      return RewardModel.of(weightedSum(components))
    })
  )
