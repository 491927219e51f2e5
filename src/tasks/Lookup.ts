/**
 * `lookup`: read one value out of a list of key=value pairs (in-context retrieval).
 *
 *   prompt      "b=7 k=2 q=9 a=4. q?\n"
 *   completion  "q=9\n#### 9"
 *   answer      "9"
 *
 * Keys are distinct letters, values single digits, so the answer cannot be guessed from the
 * key: the model has to find it in the prompt. The worked step restates the pair: without it,
 * models of the bundled size stayed at about 45% (a guess among the listed values) for 2,000
 * steps of lookup alone and for 16,000 steps of all skills. Knobs: `minPairs` .. `maxPairs` and
 * `maxChars`.
 */
import { Schema } from "effect"
import { finalAnswerGrader } from "./Answer.ts"
import { between, intBetween, makeTask, pick, rangeProblem, type Task, withDefaults } from "./Task.ts"

export const LookupKnobs = Schema.Struct({
  minPairs: Schema.optionalKey(intBetween(1, 26)),
  maxPairs: Schema.optionalKey(intBetween(1, 26)),
  maxChars: Schema.optionalKey(intBetween(32, 4096))
})
export type LookupKnobs = typeof LookupKnobs.Type

export interface LookupSettings {
  readonly minPairs: number
  readonly maxPairs: number
  readonly maxChars: number
}

/** Two to six pairs: prompts of 12 to 28 characters. */
export const lookupDefaults: LookupSettings = { minPairs: 2, maxPairs: 6, maxChars: 120 }

export const lookupKnobsProblem = (k: LookupSettings): string | undefined =>
  rangeProblem("minPairs", k.minPairs, "maxPairs", k.maxPairs)

export const resolveLookupKnobs = (knobs: LookupKnobs = {}): LookupSettings => withDefaults(lookupDefaults, knobs)

const KEYS = [..."abcdefghijklmnopqrstuvwxyz"]

/** The `lookup` task with the given knobs (defaults filled in) and seed. */
export const lookup = (knobs: LookupKnobs = {}, seed = 0): Task<LookupSettings> => {
  const k = resolveLookupKnobs(knobs)
  const problem = lookupKnobsProblem(k)
  if (problem !== undefined) throw new RangeError(`lookup: ${problem}`)
  return makeTask({
    name: "lookup",
    knobs: k,
    seed,
    grader: finalAnswerGrader,
    draw: (rng) => {
      const keys = rng.shuffle(KEYS).slice(0, between(rng, k.minPairs, k.maxPairs))
      const pairs = keys.map((key) => [key, rng.int(10)] as const)
      const [asked, value] = pick(rng, pairs)
      const prompt = `${pairs.map(([key, v]) => `${key}=${v}`).join(" ")}. ${asked}?\n`
      const answer = String(value)
      const completion = `${asked}=${answer}\n#### ${answer}`
      if (prompt.length + completion.length > k.maxChars) return undefined
      return { example: { prompt, completion, answer }, key: prompt }
    }
  })
}
