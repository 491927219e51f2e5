/**
 * `sort`: sort the digits of a string in ascending order.
 *
 *   prompt      "sort 52817\n"
 *   completion  "#### 12578"
 *   answer      "12578"
 *
 * The answer is graded as text, so a leading zero counts ("0129" is not "129"). Knobs:
 * `minLength` .. `maxLength` (digits in the string) and `maxChars`.
 */
import { exactFinalAnswerGrader } from "./Answer.ts"
import { LengthKnobs, lengthKnobsProblem, type LengthSettings, stringTask } from "./LengthKnobs.ts"
import { drawString, type Task, withDefaults } from "./Task.ts"

export const SortKnobs = LengthKnobs
export type SortKnobs = LengthKnobs
export type SortSettings = LengthSettings

/** Three to six digits: short enough for a small model, long enough that copying fails. */
export const sortDefaults: SortSettings = { minLength: 3, maxLength: 6, maxChars: 120 }

export const sortKnobsProblem = lengthKnobsProblem

export const resolveSortKnobs = (knobs: SortKnobs = {}): SortSettings => withDefaults(sortDefaults, knobs)

/** The `sort` task with the given knobs (defaults filled in) and seed. */
export const sort = (knobs: SortKnobs = {}, seed = 0): Task<SortSettings> =>
  stringTask("sort", resolveSortKnobs(knobs), seed, exactFinalAnswerGrader, (rng, length) => {
    const digits = drawString(rng, "0123456789", length)
    return { prompt: `sort ${digits}\n`, answer: [...digits].sort().join(""), key: digits }
  })
