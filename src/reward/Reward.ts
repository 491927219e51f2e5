/**
 * A reward: a number for each completion of a prompt, higher is better — what GRPO maximises.
 * Rule rewards grade against the task's answer, learned reward models read the text; a weighted
 * sum combines any of them. The error and requirement types stay open, so a user's own reward
 * with its own error type carries that error into every program that uses it.
 *
 * Besides the total, a reward reports its parts (e.g. `correct` and `format` of a rule reward)
 * so that tuning can log what moved.
 */
import { Effect } from "effect"
import type { Example } from "../tasks/Task.ts"

/** What a completion answers: the prompt text and the reference answer rule rewards grade against. */
export type RewardPrompt = Pick<Example, "prompt" | "answer">

export interface RewardScores {
  /** One reward per completion. */
  readonly total: ReadonlyArray<number>
  /** Named components, one value per completion each (empty when the reward has none). */
  readonly parts: Readonly<Record<string, ReadonlyArray<number>>>
}

export interface Reward<E = never, R = never> {
  /** A short name for logs and metric keys ("arith", "rm", ...). */
  readonly name: string
  /** Rewards of `completions[i]` as an answer to `prompts[i]`, batched. */
  readonly score: (
    prompts: ReadonlyArray<RewardPrompt>,
    completions: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<number>, E, R>
  /** The same rewards with their parts. */
  readonly scoreParts: (
    prompts: ReadonlyArray<RewardPrompt>,
    completions: ReadonlyArray<string>
  ) => Effect.Effect<RewardScores, E, R>
}

/**
 * A reward from its `scoreParts`. Prompts and completions of different counts are a bug in the
 * caller, not bad input, so they end the program as a defect.
 */
export const makeReward = <E, R>(
  name: string,
  scoreParts: (prompts: ReadonlyArray<RewardPrompt>, completions: ReadonlyArray<string>) => Effect.Effect<RewardScores, E, R>
): Reward<E, R> => {
  const checked = (prompts: ReadonlyArray<RewardPrompt>, completions: ReadonlyArray<string>) =>
    prompts.length === completions.length
      ? scoreParts(prompts, completions)
      : Effect.die(new RangeError(`reward ${name}: ${prompts.length} prompts but ${completions.length} completions`))
  return {
    name,
    scoreParts: checked,
    score: (prompts, completions) => Effect.map(checked(prompts, completions), (scores) => scores.total)
  }
}
