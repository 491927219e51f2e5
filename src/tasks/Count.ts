/**
 * `count`: how often a digit occurs in a string of digits.
 *
 *   prompt      "count 3 in 4313273\n"
 *   completion  "#### 3"
 *   answer      "3"
 *
 * The digit asked about is usually one the string contains (nine times in ten), so "0" is a
 * rare answer rather than a safe guess. Knobs: `minLength` .. `maxLength` (digits in the
 * string) and `maxChars`.
 */
import { finalAnswerGrader } from "./Answer.ts"
import { LengthKnobs, lengthKnobsProblem, type LengthSettings } from "./LengthKnobs.ts"
import { between, drawString, makeTask, pick, type Task, withDefaults } from "./Task.ts"

export const CountKnobs = LengthKnobs
export type CountKnobs = LengthKnobs
export type CountSettings = LengthSettings

/** Five to twelve digits: counts from 0 to about 5. */
export const countDefaults: CountSettings = { minLength: 5, maxLength: 12, maxChars: 120 }

export const countKnobsProblem = lengthKnobsProblem

export const resolveCountKnobs = (knobs: CountKnobs = {}): CountSettings => withDefaults(countDefaults, knobs)

const DIGITS = "0123456789"

/** The `count` task with the given knobs (defaults filled in) and seed. */
export const count = (knobs: CountKnobs = {}, seed = 0): Task<CountSettings> => {
  const k = resolveCountKnobs(knobs)
  const problem = countKnobsProblem(k)
  if (problem !== undefined) throw new RangeError(`count: ${problem}`)
  return makeTask({
    name: "count",
    knobs: k,
    seed,
    grader: finalAnswerGrader,
    draw: (rng) => {
      const digits = drawString(rng, DIGITS, between(rng, k.minLength, k.maxLength))
      const target = rng.int(10) === 0 ? pick(rng, [...DIGITS]) : pick(rng, [...digits])
      const answer = String([...digits].filter((d) => d === target).length)
      const prompt = `count ${target} in ${digits}\n`
      const completion = `#### ${answer}`
      if (prompt.length + completion.length > k.maxChars) return undefined
      return { example: { prompt, completion, answer }, key: `${target} ${digits}` }
    }
  })
}
