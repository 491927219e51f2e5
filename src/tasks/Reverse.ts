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
import { exactFinalAnswerGrader } from "./Answer.ts"
import { LengthKnobs, lengthKnobsProblem, type LengthSettings, stringTask } from "./LengthKnobs.ts"
import { drawString, type Task, withDefaults } from "./Task.ts"

export const ReverseKnobs = LengthKnobs
export type ReverseKnobs = LengthKnobs
export type ReverseSettings = LengthSettings

/** Two to five letters: up to eight a model of the bundled size was at 0% after 2,000 steps of six skills. */
export const reverseDefaults: ReverseSettings = { minLength: 2, maxLength: 5, maxChars: 120 }

export const reverseKnobsProblem = lengthKnobsProblem

export const resolveReverseKnobs = (knobs: ReverseKnobs = {}): ReverseSettings => withDefaults(reverseDefaults, knobs)

const LETTERS = "abcdefghijklmnopqrstuvwxyz"

/** The `reverse` task with the given knobs (defaults filled in) and seed. */
export const reverse = (knobs: ReverseKnobs = {}, seed = 0): Task<ReverseSettings> =>
  stringTask("reverse", resolveReverseKnobs(knobs), seed, exactFinalAnswerGrader, (rng, length) => {
    const letters = drawString(rng, LETTERS, length)
    return { prompt: `reverse ${letters}\n`, answer: [...letters].reverse().join(""), key: letters }
  })
