/**
 * The tasks that work on one string (`sort`, `reverse`, `count`): their knobs, how long it is
 * (`minLength` .. `maxLength` characters) and `maxChars` for prompt + completion (each task has
 * its own defaults), and how such a task is made from what it draws.
 */
import { Schema } from "effect"
import type { Rng } from "../model/Rng.ts"
import { between, type Grader, intBetween, makeTask, rangeProblem, type Task, type TaskName } from "./Task.ts"

export const LengthKnobs = Schema.Struct({
  minLength: Schema.optionalKey(intBetween(1, 40)),
  maxLength: Schema.optionalKey(intBetween(1, 40)),
  maxChars: Schema.optionalKey(intBetween(32, 4096))
})
export type LengthKnobs = typeof LengthKnobs.Type

export interface LengthSettings {
  readonly minLength: number
  readonly maxLength: number
  readonly maxChars: number
}

export const lengthKnobsProblem = (k: LengthSettings): string | undefined =>
  rangeProblem("minLength", k.minLength, "maxLength", k.maxLength)

/** What a task on one string draws: its prompt and answer (the completion is `#### answer`), and the key that tells examples apart. */
export interface StringProblem {
  readonly prompt: string
  readonly answer: string
  readonly key: string
}

/**
 * A task on one string from its settings (defaults filled in): the knobs checked, and each
 * example drawn by `draw` for a length drawn first, kept when prompt and completion fit maxChars.
 */
export const stringTask = (
  name: TaskName,
  k: LengthSettings,
  seed: number,
  grader: Grader,
  draw: (rng: Rng, length: number) => StringProblem
): Task<LengthSettings> => {
  const problem = lengthKnobsProblem(k)
  if (problem !== undefined) throw new RangeError(`${name}: ${problem}`)
  return makeTask({
    name,
    knobs: k,
    seed,
    grader,
    draw: (rng) => {
      const { prompt, answer, key } = draw(rng, between(rng, k.minLength, k.maxLength))
      const completion = `#### ${answer}`
      if (prompt.length + completion.length > k.maxChars) return undefined
      return { example: { prompt, completion, answer }, key }
    }
  })
}
