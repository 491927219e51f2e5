/**
 * `general`: plain text that is not a task, for perplexity and for the "general" side of
 * contrastive neuron scoring. Short paragraphs of sentences about people, objects and places,
 * generated from a small grammar over the same alphabet as the tasks (lower case, no digits).
 *
 *   prompt      ""
 *   completion  "leo and rosa go to the quiet bridge. there is a green dog behind the garden."
 *   answer      ""
 *
 * Knobs: `minSentences` .. `maxSentences` per example and `maxChars`.
 */
import { Schema } from "effect"
import type { Rng } from "../model/Rng.ts"
import type { Example, Grader } from "./Task.ts"
import { between, makeTask, pick, type Task, withDefaults } from "./Task.ts"

const intBetween = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))

export const GeneralKnobs = Schema.Struct({
  minSentences: Schema.optionalKey(intBetween(1, 20)),
  maxSentences: Schema.optionalKey(intBetween(1, 20)),
  maxChars: Schema.optionalKey(intBetween(32, 4096))
})
export type GeneralKnobs = typeof GeneralKnobs.Type

export interface GeneralSettings {
  readonly minSentences: number
  readonly maxSentences: number
  readonly maxChars: number
}

/** One to three sentences: about as long as a task example, so it fits the same context. */
export const generalDefaults: GeneralSettings = { minSentences: 1, maxSentences: 3, maxChars: 120 }

export const generalKnobsProblem = (k: GeneralSettings): string | undefined =>
  k.minSentences > k.maxSentences
    ? `minSentences (${k.minSentences}) must not exceed maxSentences (${k.maxSentences})`
    : undefined

export const resolveGeneralKnobs = (knobs: GeneralKnobs = {}): GeneralSettings => withDefaults(generalDefaults, knobs)

const NAMES = ["mia", "leo", "nora", "omar", "iris", "hugo", "rosa", "finn", "lena", "theo", "ada", "sam"]
const ADJECTIVES = ["old", "small", "red", "quiet", "busy", "green", "tall", "warm", "dark", "bright", "empty", "little"]
const NOUNS = ["cat", "dog", "lamp", "boat", "bird", "chair", "letter", "box", "horse", "clock", "basket", "kettle"]
const PLACES = ["park", "market", "river", "school", "garden", "kitchen", "station", "library", "forest", "village", "bridge", "harbor"]
const INTRANSITIVE: ReadonlyArray<readonly [string, string]> = [
  ["sleeps", "sleep"], ["waits", "wait"], ["sings", "sing"], ["rests", "rest"], ["laughs", "laugh"], ["reads", "read"]
]
const TRANSITIVE = ["finds", "paints", "carries", "watches", "likes", "opens", "sells", "fixes", "cleans", "draws"]
const MOTION: ReadonlyArray<readonly [string, string]> = [
  ["walks", "walk"], ["goes", "go"], ["runs", "run"], ["drives", "drive"], ["hurries", "hurry"], ["comes", "come"]
]
const PREPOSITIONS = ["in", "near", "behind", "beside", "outside", "by"]
const TIMES = ["today", "at night", "in the morning", "every day", "after lunch", "before dinner", "in the rain"]

const article = (word: string) => ("aeiou".includes(word[0]) ? "an" : "a")

/** A noun phrase: a name, or a determiner, maybe an adjective, and a noun. */
const nounPhrase = (rng: Rng): string => {
  if (rng.int(3) === 0) return pick(rng, NAMES)
  const words = rng.int(2) === 0 ? [pick(rng, ADJECTIVES), pick(rng, NOUNS)] : [pick(rng, NOUNS)]
  const det = pick(rng, ["the", "the", "a", "her", "his", "our"])
  return [det === "a" ? article(words[0]) : det, ...words].join(" ")
}

const place = (rng: Rng) => `the ${rng.int(3) === 0 ? pick(rng, ADJECTIVES) + " " : ""}${pick(rng, PLACES)}`

const SENTENCES: ReadonlyArray<(rng: Rng) => string> = [
  (rng) => `${nounPhrase(rng)} ${pick(rng, TRANSITIVE)} ${nounPhrase(rng)} ${pick(rng, PREPOSITIONS)} ${place(rng)}`,
  (rng) => `${nounPhrase(rng)} ${pick(rng, MOTION)[0]} to ${place(rng)} ${pick(rng, TIMES)}`,
  (rng) => `${place(rng)} is ${pick(rng, ADJECTIVES)} ${pick(rng, TIMES)}`,
  (rng) => {
    const [a, b] = rng.shuffle(NAMES)
    return `${a} and ${b} ${pick(rng, MOTION)[1]} to ${place(rng)}`
  },
  (rng) => `${nounPhrase(rng)} ${pick(rng, INTRANSITIVE)[0]} ${pick(rng, PREPOSITIONS)} ${place(rng)}, and ${nounPhrase(rng)} ${pick(rng, INTRANSITIVE)[0]}`,
  (rng) => {
    const adjective = pick(rng, ADJECTIVES)
    return `there is ${article(adjective)} ${adjective} ${pick(rng, NOUNS)} ${pick(rng, PREPOSITIONS)} ${place(rng)}`
  },
  (rng) => `when ${pick(rng, NAMES)} ${pick(rng, MOTION)[0]} home, ${nounPhrase(rng)} ${pick(rng, INTRANSITIVE)[0]}`
]

/** Text is not graded for accuracy; this exact-match grader exists only so the task is total. */
const textGrader: Grader = {
  metric: "accuracy",
  extract: (completion) => completion.trim() || undefined,
  grade: (example: Example, completion: string) => completion.trim() === example.completion.trim()
}

/** The `general` task with the given knobs (defaults filled in) and seed. */
export const general = (knobs: GeneralKnobs = {}, seed = 0): Task<GeneralSettings> => {
  const k = resolveGeneralKnobs(knobs)
  const problem = generalKnobsProblem(k)
  if (problem !== undefined) throw new RangeError(`general: ${problem}`)
  return makeTask({
    name: "general",
    knobs: k,
    seed,
    grader: textGrader,
    draw: (rng) => {
      const count = between(rng, k.minSentences, k.maxSentences)
      const text = Array.from({ length: count }, () => pick(rng, SENTENCES)(rng) + ".").join(" ")
      if (text.length > k.maxChars) return undefined
      return { example: { prompt: "", completion: text, answer: "" }, key: text }
    }
  })
}
