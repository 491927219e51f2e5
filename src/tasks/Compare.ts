/**
 * `compare`: the larger of two numbers.
 *
 *   prompt      "larger of 473 and 437?\n"
 *   completion  "#### 473"
 *   answer      "473"
 *
 * Half the pairs differ in a single digit (same length, so the model must compare digit by
 * digit), the rest are independent draws that may differ in length. Knobs: `digits` (at most
 * this many digits per number) and `maxChars`.
 */
import { Schema } from "effect"
import { finalAnswerGrader } from "./Answer.ts"
import { between, intBetween, makeTask, type Task, withDefaults } from "./Task.ts"

export const CompareKnobs = Schema.Struct({
  digits: Schema.optionalKey(intBetween(1, 12)),
  maxChars: Schema.optionalKey(intBetween(32, 4096))
})
export type CompareKnobs = typeof CompareKnobs.Type

export interface CompareSettings {
  readonly digits: number
  readonly maxChars: number
}

/** Numbers up to three digits. */
export const compareDefaults: CompareSettings = { digits: 3, maxChars: 120 }

export const resolveCompareKnobs = (knobs: CompareKnobs = {}): CompareSettings => withDefaults(compareDefaults, knobs)

/** The `compare` task with the given knobs (defaults filled in) and seed. */
export const compare = (knobs: CompareKnobs = {}, seed = 0): Task<CompareSettings> => {
  const k = resolveCompareKnobs(knobs)
  const largest = 10 ** k.digits - 1
  return makeTask({
    name: "compare",
    knobs: k,
    seed,
    grader: finalAnswerGrader,
    draw: (rng) => {
      const a = between(rng, 0, largest)
      let b: number
      if (rng.int(2) === 0) {
        const text = [...String(a)]
        const at = rng.int(text.length)
        text[at] = String(between(rng, at === 0 && text.length > 1 ? 1 : 0, 9))
        b = Number(text.join(""))
      } else b = between(rng, 0, largest)
      if (a === b) return undefined
      const prompt = `larger of ${a} and ${b}?\n`
      const answer = String(Math.max(a, b))
      const completion = `#### ${answer}`
      if (prompt.length + completion.length > k.maxChars) return undefined
      return { example: { prompt, completion, answer }, key: `${a} ${b}` }
    }
  })
}
