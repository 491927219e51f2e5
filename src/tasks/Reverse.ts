/**
 * `reverse`: spell a string of letters backwards.
 *
 *   prompt      "reverse qmxbt\n"
 *   completion  "#### tbxmq"
 *   answer      "tbxmq"
 *
 * The letters are random (not words), so the model must copy by position rather than recall.
 * Graded as text. Knobs: `minLength` .. `maxLength` (letters) and `maxChars`.
 */
import { Schema } from "effect"
import { exactFinalAnswerGrader } from "./Answer.ts"
import { between, drawString, intBetween, makeTask, rangeProblem, type Task, withDefaults } from "./Task.ts"

export const ReverseKnobs = Schema.Struct({
  minLength: Schema.optionalKey(intBetween(1, 40)),
  maxLength: Schema.optionalKey(intBetween(1, 40)),
  maxChars: Schema.optionalKey(intBetween(32, 4096))
})
export type ReverseKnobs = typeof ReverseKnobs.Type

export interface ReverseSettings {
  readonly minLength: number
  readonly maxLength: number
  readonly maxChars: number
}

/** Three to eight letters. */
export const reverseDefaults: ReverseSettings = { minLength: 3, maxLength: 8, maxChars: 120 }

export const reverseKnobsProblem = (k: ReverseSettings): string | undefined =>
  rangeProblem("minLength", k.minLength, "maxLength", k.maxLength)

export const resolveReverseKnobs = (knobs: ReverseKnobs = {}): ReverseSettings => withDefaults(reverseDefaults, knobs)

const LETTERS = "abcdefghijklmnopqrstuvwxyz"

/** The `reverse` task with the given knobs (defaults filled in) and seed. */
export const reverse = (knobs: ReverseKnobs = {}, seed = 0): Task<ReverseSettings> => {
  const k = resolveReverseKnobs(knobs)
  const problem = reverseKnobsProblem(k)
  if (problem !== undefined) throw new RangeError(`reverse: ${problem}`)
  return makeTask({
    name: "reverse",
    knobs: k,
    seed,
    grader: exactFinalAnswerGrader,
    draw: (rng) => {
      const letters = drawString(rng, LETTERS, between(rng, k.minLength, k.maxLength))
      const answer = [...letters].reverse().join("")
      const prompt = `reverse ${letters}\n`
      const completion = `#### ${answer}`
      if (prompt.length + completion.length > k.maxChars) return undefined
      return { example: { prompt, completion, answer }, key: letters }
    }
  })
}
