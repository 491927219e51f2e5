/**
 * `compare`: the largest of a few numbers.
 *
 *   prompt      "largest of 47, 74 and 41?\n"
 *   completion  "#### 74"
 *   answer      "74"
 *
 * Every number after the first differs from it in a single digit half the time (same length,
 * so the model must compare digit by digit); the rest are independent draws that may differ in
 * length. The numbers are distinct, so copying one scores 1 in `numbers`. Knobs: `digits` (at
 * most this many digits per number), `numbers` (how many) and `maxChars`.
 */
import { Schema } from "effect"
import type { Rng } from "../model/Rng.ts"
import { finalAnswerGrader } from "./Answer.ts"
import { between, intBetween, makeTask, type Task, withDefaults } from "./Task.ts"

export const CompareKnobs = Schema.Struct({
  digits: Schema.optionalKey(intBetween(1, 12)),
  numbers: Schema.optionalKey(intBetween(2, 8)),
  maxChars: Schema.optionalKey(intBetween(32, 4096))
})
export type CompareKnobs = typeof CompareKnobs.Type

export interface CompareSettings {
  readonly digits: number
  readonly numbers: number
  readonly maxChars: number
}

/** Three numbers of up to two digits: guessing scores a third. */
export const compareDefaults: CompareSettings = { digits: 2, numbers: 3, maxChars: 120 }

export const resolveCompareKnobs = (knobs: CompareKnobs = {}): CompareSettings => withDefaults(compareDefaults, knobs)

/** `first` with one digit changed (never to a leading zero). */
const nearMiss = (rng: Rng, first: number): number => {
  const text = [...String(first)]
  const at = rng.int(text.length)
  text[at] = String(between(rng, at === 0 && text.length > 1 ? 1 : 0, 9))
  return Number(text.join(""))
}

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
      const first = between(rng, 0, largest)
      const numbers = [first]
      for (let i = 1; i < k.numbers; i++) numbers.push(rng.int(2) === 0 ? nearMiss(rng, first) : between(rng, 0, largest))
      if (new Set(numbers).size < numbers.length) return undefined
      const prompt = `largest of ${numbers.slice(0, -1).join(", ")} and ${numbers.at(-1)}?\n`
      const answer = String(Math.max(...numbers))
      const completion = `#### ${answer}`
      if (prompt.length + completion.length > k.maxChars) return undefined
      return { example: { prompt, completion, answer }, key: numbers.join(" ") }
    }
  })
}
