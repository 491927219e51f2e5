/**
 * The typed errors of rewards: a checkpoint that is not a usable reward model, and inputs a
 * reward model cannot score. Messages name the file and what is wrong, as the checkpoint
 * errors of io/Errors.ts do.
 */
import { Schema } from "effect"

/**
 * A checkpoint that loads as a model but is not a reward model simmer can score with: a causal
 * LM (`lm_head`) instead of a sequence classifier (`score`), or a classifier with more than one
 * output (`num_labels` ≠ 1).
 */
export class InvalidRewardModel extends Schema.TaggedError<InvalidRewardModel>()("InvalidRewardModel", {
  path: Schema.String,
  problem: Schema.Literals(["causal-lm", "lm-head", "num-labels"]),
  message: Schema.String
}) {}

/**
 * Sequences of different lengths for a reward model whose config.json has no `pad_token_id`:
 * the score is read at the last token before the first pad, so a padded batch needs one.
 */
export class MissingPadToken extends Schema.TaggedError<MissingPadToken>()("MissingPadToken", {
  path: Schema.String,
  message: Schema.String
}) {}

/**
 * A rule reward that cannot grade the data GRPO tunes on (`rule: program` on arith prompts): it
 * would pay its format part for nothing and its correct part never.
 */
export class RewardDoesNotFit extends Schema.TaggedError<RewardDoesNotFit>()("RewardDoesNotFit", {
  rule: Schema.String,
  datasets: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** A sequence a reward model cannot score: empty, or with ids outside its vocabulary. */
export class InvalidRewardInput extends Schema.TaggedError<InvalidRewardInput>()("InvalidRewardInput", {
  path: Schema.String,
  message: Schema.String
}) {}
