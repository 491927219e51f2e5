/**
 * Learned reward models as RLHF tools save them: a Hugging Face
 * `LlamaForSequenceClassification` / `Qwen2ForSequenceClassification` checkpoint with
 * `num_labels` 1 — the decoder's tensors as `model.*`, the head as `score.weight` [1, hidden]
 * (no bias), no `lm_head`. Loading checks that shape of things and says which part is wrong.
 */
import { join } from "node:path"
import type * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { LoadCheckpointError } from "../io/Checkpoint.ts"
import { configFileName, scoreHeadName } from "../io/CheckpointLayout.ts"
import { disposeCheckpoint, loadCheckpoint } from "../io/CheckpointReader.ts"
import type { InvalidTokenizer, NoTokenizer, TensorMismatch } from "../io/Errors.ts"
import { architectureClass, type HfConfig, labelCount, modelKind, readHfConfig, sequenceClassifierClass } from "../io/HfConfig.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import { InvalidRewardModel } from "./Errors.ts"

/** Why a reward model cannot be loaded: its checkpoint, its tokenizer, or not a reward model. */
export type RewardLoadError = LoadCheckpointError | InvalidRewardModel | NoTokenizer | InvalidTokenizer

export interface RewardCheckpoint {
  /** The checkpoint folder, for messages. */
  readonly path: string
  readonly config: ModelConfig
  /** The decoder's weights (no LM head). */
  readonly params: Params
  /** `score.weight` in internal orientation: [hidden, 1]. */
  readonly head: tf.Tensor2D
  /** config.json's `pad_token_id`: where a padded sequence ends. */
  readonly padId: number | undefined
}

/** Releases the reward model's tensors. */
export const disposeRewardCheckpoint = (model: RewardCheckpoint): void =>
  disposeCheckpoint({ config: model.config, kind: "sequence-classification", params: model.params, scoreHead: model.head })

/** Why a decoded config.json is not a reward model's (a causal LM, or num_labels ≠ 1), or undefined when it is. */
export const rewardConfigProblem = (hf: HfConfig, configPath: string): InvalidRewardModel | undefined => {
  const expectedClass = sequenceClassifierClass[hf.model_type]
  if (modelKind(hf) !== "sequence-classification") {
    return new InvalidRewardModel({
      path: configPath,
      problem: "causal-lm",
      message: `${configPath} describes ${architectureClass(hf)}, a causal language model with an lm_head, not a reward ` +
        `model: reward models are saved as ${expectedClass} with num_labels 1 (a score head, no lm_head).`
    })
  }
  const labels = labelCount(hf)
  if (labels !== 1) {
    return new InvalidRewardModel({
      path: configPath,
      problem: "num-labels",
      message: `${configPath} describes a ${expectedClass} with ${labels} labels (num_labels / id2label); a reward model ` +
        `has exactly 1, a single score per sequence.`
    })
  }
  return undefined
}

/**
 * Loads a reward model. Besides the checkpoint errors of `loadCheckpoint`, fails with
 * InvalidRewardModel for a causal LM, an `lm_head` where `score` should be, or `num_labels` ≠ 1.
 */
export const loadRewardCheckpoint = Effect.fn("RewardCheckpoint.load")(function*(
  dir: string
): Effect.fn.Return<RewardCheckpoint, LoadCheckpointError | InvalidRewardModel> {
  const configPath = join(dir, configFileName)
  const hf = yield* readHfConfig(configPath)
  const problem = rewardConfigProblem(hf, configPath)
  if (problem !== undefined) return yield* problem
  const expectedClass = sequenceClassifierClass[hf.model_type]
  const loaded = yield* loadCheckpoint(dir, { expected: "sequence-classification" }).pipe(
    Effect.catchTag("TensorMismatch", (e): Effect.Effect<never, TensorMismatch | InvalidRewardModel> =>
      e.unexpected.includes("lm_head.weight") && e.missing.includes(scoreHeadName)
        ? Effect.fail(
          new InvalidRewardModel({
            path: e.path,
            problem: "lm-head",
            message: `${e.path} holds an lm_head.weight instead of the ${scoreHeadName} that ${configPath} ` +
              `(${expectedClass}) needs: it is a causal LM's weights, not a reward model's.`
          })
        )
        : Effect.fail(e))
  )
  const padId = typeof hf.pad_token_id === "number" ? hf.pad_token_id : undefined
  return { path: dir, config: loaded.config, params: loaded.params, head: loaded.scoreHead!, padId }
})
