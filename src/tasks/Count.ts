/**
 * `count`: how often a digit occurs in a string of digits.
 *
 *   prompt      "count 3 in 4313273\n"
 *   completion  "#### 3"
 *   answer      "3"
 *
 * The count is drawn first, uniformly from 0 to min(5, length), and the string built around it,
 * so no answer is a safe guess (with counts as they fall in random strings, always answering
 * "1" scores about half). Knobs: `minLength` .. `maxLength` (digits in the string) and `maxChars`.
 */
import { finalAnswerGrader } from "./Answer.ts"
import { LengthKnobs, lengthKnobsProblem, type LengthSettings, stringTask } from "./LengthKnobs.ts"
import { between, drawString, type Task, withDefaults } from "./Task.ts"

export const CountKnobs = LengthKnobs
export type CountKnobs = LengthKnobs
export type CountSettings = LengthSettings

/** Three to eight digits. */
export const countDefaults: CountSettings = { minLength: 3, maxLength: 8, maxChars: 120 }

export const countKnobsProblem = lengthKnobsProblem

export const resolveCountKnobs = (knobs: CountKnobs = {}): CountSettings => withDefaults(countDefaults, knobs)

const DIGITS = "0123456789"
/** The largest count asked for: counting further is not a different skill. */
const MAX_COUNT = 5

/** The `count` task with the given knobs (defaults filled in) and seed. */
export const count = (knobs: CountKnobs = {}, seed = 0): Task<CountSettings> =>
  stringTask("count", resolveCountKnobs(knobs), seed, finalAnswerGrader, (rng, length) => {
    const target = DIGITS[rng.int(10)]
    const occurrences = between(rng, 0, Math.min(MAX_COUNT, length))
    const at = new Set(rng.shuffle(Array.from({ length }, (_, i) => i)).slice(0, occurrences))
    const others = DIGITS.replace(target, "")
    const digits = Array.from({ length }, (_, i) => (at.has(i) ? target : drawString(rng, others, 1))).join("")
    return { prompt: `count ${target} in ${digits}\n`, answer: String(occurrences), key: `${target} ${digits}` }
  })
