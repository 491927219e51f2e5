/**
 * Scoring with a learned reward model: the decoder runs over the sequence and the score head
 * reads its final hidden state at one position — the last token before the first pad token, as
 * transformers' `XxxForSequenceClassification` pools (a sequence without a pad is read at its
 * last token). Sequences are batched, right-padded with the model's pad id; causal attention
 * means the padding never reaches the position that is read, so a padded sequence scores
 * exactly as it does alone.
 *
 * Text is scored as transformers scores `tokenizer(prompt + completion)`: the concatenation,
 * encoded with the tokenizer's special tokens (e.g. a leading BOS).
 *
 * The forward pass runs on tfjs (`tfjsRewardScorer`), or on ONNX Runtime (RewardSession.ts):
 * a RewardScorer scores a padded batch at given positions.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { Tokenizer } from "../io/Tokenizer.ts"
import { readFloats } from "../model/Read.ts"
import { hiddenStates } from "../model/Transformer.ts"
import { InvalidRewardInput, MissingPadToken } from "./Errors.ts"
import { makeReward, type Reward } from "./Reward.ts"
import type { RewardCheckpoint } from "./RewardCheckpoint.ts"

/** Sequences per forward pass unless told otherwise. */
export const defaultRewardBatchSize = 16

/** The position a sequence is read at: before its first pad token, else its last token. */
export const poolIndex = (ids: ReadonlyArray<number>, padId: number | undefined): number => {
  const firstPad = padId === undefined ? -1 : ids.indexOf(padId)
  return firstPad > 0 ? firstPad - 1 : ids.length - 1
}

/**
 * The reward model's forward pass on one engine: the scores of `rows` (right-padded to one
 * length T) at positions `read` (indices into the flattened [B·T] positions), one per row.
 */
export type RewardScorer = (rows: ReadonlyArray<ReadonlyArray<number>>, read: ReadonlyArray<number>) => Effect.Effect<Array<number>>

export const tfjsRewardScorer = (model: RewardCheckpoint): RewardScorer => (rows, read) =>
  Effect.suspend(() => {
    const T = rows[0].length
    const scores = tf.tidy(() => {
      const { hidden } = hiddenStates(model.config, model.params, tf.tensor2d(rows.flat(), [rows.length, T], "int32")) // [B*T, D]
      const pooled = tf.gather(hidden, tf.tensor1d([...read], "int32")) // [B, D]
      return tf.reshape(tf.matMul(pooled, model.head), [rows.length]) // [B]
    })
    // Computed in a tidy, read after it (a tidy cannot span an await).
    return Effect.map(readFloats(scores, true), (values) => Array.from(values))
  })

/** Scores of one batch: the rows right-padded to the longest with `padId`, each read at its pool index. */
const scoreBatch = (model: RewardCheckpoint, scorer: RewardScorer, rows: ReadonlyArray<ReadonlyArray<number>>, padId: number) =>
  Effect.suspend(() => {
    const T = Math.max(...rows.map((r) => r.length))
    const padded = rows.map((r) => [...r, ...new Array<number>(T - r.length).fill(padId)])
    return scorer(padded, rows.map((r, b) => b * T + poolIndex(r, model.padId)))
  })

/**
 * One score per token sequence. Fails with InvalidRewardInput for an empty sequence or an id
 * outside the vocabulary, and with MissingPadToken when sequences of different lengths meet in
 * a batch and the model has no pad id.
 */
export const scoreIds = (
  model: RewardCheckpoint,
  sequences: ReadonlyArray<ReadonlyArray<number>>,
  batchSize = defaultRewardBatchSize,
  scorer = tfjsRewardScorer(model)
): Effect.Effect<Array<number>, InvalidRewardInput | MissingPadToken> =>
  Effect.gen(function*() {
    const vocab = model.config.vocabSize
    for (const [i, ids] of sequences.entries()) {
      const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab)
      if (ids.length === 0 || bad !== undefined) {
        return yield* new InvalidRewardInput({
          path: model.path,
          message: ids.length === 0
            ? `Sequence ${i} given to the reward model ${model.path} has no tokens; there is nothing to score.`
            : `Sequence ${i} given to the reward model ${model.path} contains the id ${bad}, outside its vocabulary of ${vocab}.`
        })
      }
    }
    const scores: Array<number> = []
    for (let start = 0; start < sequences.length; start += batchSize) {
      const rows = sequences.slice(start, start + batchSize)
      const padded = rows.some((r) => r.length !== rows[0].length)
      if (padded && model.padId === undefined) {
        return yield* new MissingPadToken({
          path: model.path,
          message: `The reward model ${model.path} has no pad_token_id in its config.json, so a batch of sequences of ` +
            `different lengths (${rows.map((r) => r.length).join(", ")} tokens) cannot be padded: its score is read at ` +
            `the last token before the first pad. Set pad_token_id in config.json (to the tokenizer's pad token) or ` +
            `score one sequence at a time.`
        })
      }
      scores.push(...yield* scoreBatch(model, scorer, rows, model.padId ?? 0))
      yield* Effect.yieldNow
    }
    return scores
  })

/** The reward model as a Reward on text: the score of `prompt + completion`, with no parts. */
export const classifierReward = (
  model: RewardCheckpoint,
  tokenizer: Tokenizer,
  options: { readonly name?: string; readonly batchSize?: number; readonly scorer?: RewardScorer } = {}
): Reward<InvalidRewardInput | MissingPadToken> =>
  makeReward(options.name ?? "rm", (prompts, completions) =>
    Effect.map(
      scoreIds(
        model,
        completions.map((completion, i) => tokenizer.encode(prompts[i].prompt + completion, { addSpecialTokens: true })),
        options.batchSize,
        options.scorer
      ),
      (total) => ({ total, parts: {} })
    ))
