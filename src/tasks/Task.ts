/**
 * What every dataset element and every built-in task looks like.
 *
 * An `Example` is a prompt, its reference completion and the short answer grading compares
 * against. A `Task` generates examples deterministically from (task, knobs, seed, split, index)
 * and knows how to grade a model's completion. Splits are disjoint by construction: an
 * example's split is decided by hashing its content (`splitOf`), never by the seed or index,
 * so the same prompt can never land in two splits, whatever seed or knobs produced it.
 */
import { Schema } from "effect"
import { Rng } from "../model/Rng.ts"

/** The three disjoint parts of every dataset. */
export type Split = "train" | "calibration" | "test"

export const splits: ReadonlyArray<Split> = ["train", "calibration", "test"]

/**
 * One dataset element. `prompt + completion` is the text a model trains on; `completion` alone
 * is what it must generate at evaluation time. `answer` is what grading compares against: the
 * final number for `arith` and GSM8K data, the hidden tests for `program`, empty for text.
 */
export interface Example {
  readonly prompt: string
  readonly completion: string
  readonly answer: string
}

/** Answer extraction and grading for one kind of example. */
export interface Grader {
  /** What the fraction it grades correct is called: exact-match accuracy, or pass@1 for programs run against tests. */
  readonly metric: "accuracy" | "pass@1"
  /** The answer a completion gives, normalised; `undefined` when it gives none in the expected format. */
  readonly extract: (completion: string) => string | undefined
  /** Whether `completion` is a correct answer to `example`. */
  readonly grade: (example: Example, completion: string) => boolean
}

/** The built-in tasks: `general` is text; every other one is graded. */
export const taskNames = ["arith", "program", "sort", "reverse", "count", "compare", "lookup", "units", "general"] as const
export type TaskName = (typeof taskNames)[number]

/** A built-in task: an unbounded, deterministic source of examples for each split, plus its grader. */
export interface Task<Knobs = unknown> extends Grader {
  readonly name: TaskName
  /** The knobs in force, defaults filled in. */
  readonly knobs: Knobs
  readonly seed: number
  /** Example `index` (0, 1, 2, ...) of `split`; the same arguments always give the same example. */
  readonly example: (split: Split, index: number) => Example
  /** Examples `start .. start + count - 1` of `split`. */
  readonly take: (split: Split, count: number, start?: number) => ReadonlyArray<Example>
  /** The fresh training chunk for loop iteration `i`: train examples `i*size .. (i+1)*size - 1`. */
  readonly chunk: (i: number, size: number) => ReadonlyArray<Example>
}

/**
 * Fractions of the split buckets: an example belongs to train with probability 0.8 and to
 * calibration and test with 0.1 each.
 */
const BUCKETS = 1000
const TRAIN_BUCKETS = 800
const CALIBRATION_BUCKETS = 100

/**
 * The split an example with this key belongs to. The key is content (a prompt, or for the
 * built-ins the reference completion, which the prompt determines), so equal content always
 * falls in the same split.
 */
export const splitOf = (key: string): Split => {
  const bucket = hash128(key)[0] % BUCKETS
  return bucket < TRAIN_BUCKETS
    ? "train"
    : bucket < TRAIN_BUCKETS + CALIBRATION_BUCKETS
    ? "calibration"
    : "test"
}

/**
 * cyrb128: a fast 128-bit string hash (four 32-bit words). Used for split buckets and to seed
 * one independent generator per (task, knobs, seed, split, index), so examples can be drawn in
 * any order without collisions between nearby indices.
 */
export const hash128 = (text: string): [number, number, number, number] => {
  let h1 = 1779033703
  let h2 = 3144134277
  let h3 = 1013904242
  let h4 = 2773480762
  for (let i = 0; i < text.length; i++) {
    const k = text.charCodeAt(i)
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067)
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233)
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213)
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179)
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067)
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233)
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213)
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179)
  h1 ^= h2 ^ h3 ^ h4
  h2 ^= h1
  h3 ^= h1
  h4 ^= h1
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0]
}

/** A generator whose whole state comes from hashing `key`. */
export const rngFor = (key: string): Rng => {
  const state = hash128(key)
  if (state.every((w) => w === 0)) state[0] = 1
  return Rng.fromState(state)
}

/** Knobs as a canonical string (sorted keys), so equal knobs give equal streams. */
export const canonicalKnobs = (knobs: object): string =>
  JSON.stringify(knobs, (_key, value) =>
    value !== null && typeof value === "object" && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : value)

/** One draw of a task's generator: the example and the content key that decides its split. */
export interface Draw {
  readonly example: Example
  readonly key: string
}

/**
 * Draws per example before giving up. A split receives 10% of the buckets, so ~10 draws are
 * expected; running out means the knobs allow too few distinct examples to fill three
 * disjoint splits (or too few that fit `maxChars`).
 */
const MAX_DRAWS = 5_000

/** Thrown (as a defect) when knobs leave no example for a split. */
export class TaskExhausted extends Error {
  override readonly name = "TaskExhausted"
}

/**
 * Builds a `Task` from a generator. `draw` is called with a generator seeded from
 * (task, knobs, seed, split, index) until it produces an example whose key falls in the
 * requested split; it returns `undefined` to reject a draw (too long, degenerate, ...).
 */
export const makeTask = <Knobs extends object>(options: {
  readonly name: TaskName
  readonly knobs: Knobs
  readonly seed: number
  readonly grader: Grader
  readonly draw: (rng: Rng) => Draw | undefined
}): Task<Knobs> => {
  const { draw, grader, knobs, name, seed } = options
  const prefix = `${name}|${canonicalKnobs(knobs)}|${seed}|`
  const example = (split: Split, index: number): Example => {
    if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`example index must be a natural number, got ${index}`)
    const rng = rngFor(`${prefix}${split}|${index}`)
    for (let attempt = 0; attempt < MAX_DRAWS; attempt++) {
      const drawn = draw(rng)
      if (drawn !== undefined && splitOf(drawn.key) === split) return drawn.example
    }
    throw new TaskExhausted(
      `task ${name} with knobs ${canonicalKnobs(knobs)} produced no ${split} example in ${MAX_DRAWS} draws: ` +
        `the knobs allow too few distinct examples (or too few within maxChars); widen them`
    )
  }
  const take = (split: Split, count: number, start = 0): ReadonlyArray<Example> =>
    Array.from({ length: count }, (_, j) => example(split, start + j))
  return {
    name,
    knobs,
    seed,
    metric: grader.metric,
    extract: grader.extract,
    grade: grader.grade,
    example,
    take,
    chunk: (i, size) => take("train", size, i * size)
  }
}

/** `defaults` overridden by the knobs that are given (an explicit `undefined` keeps the default). */
export const withDefaults = <K extends object>(defaults: K, knobs: Partial<K>): K => {
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) }
  for (const [key, value] of Object.entries(knobs)) if (value !== undefined && key in defaults) out[key] = value
  return out as K
}

/** Uniform choice from a non-empty list. */
export const pick = <A>(rng: Rng, items: ReadonlyArray<A>): A => items[rng.int(items.length)]

/** Uniform integer in [lo, hi]. */
export const between = (rng: Rng, lo: number, hi: number): number => lo + rng.int(hi - lo + 1)

/** An integer knob in [minimum, maximum], as a Schema. */
export const intBetween = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))

/** The problem with a `min..max` pair of knobs (e.g. minLength, maxLength), or `undefined` when min ≤ max. */
export const rangeProblem = (minName: string, min: number, maxName: string, max: number): string | undefined =>
  min > max ? `${minName} (${min}) must not exceed ${maxName} (${max})` : undefined

/** A string of `length` characters drawn uniformly from `chars`. */
export const drawString = (rng: Rng, chars: string, length: number): string =>
  Array.from({ length }, () => chars[rng.int(chars.length)]).join("")
