/**
 * `arith`: multi-step arithmetic word problems with a chain of thought that spells out every
 * step and a GSM8K-style final line.
 *
 *   prompt      "ivy has 47 shells, buys 8 more, then triples them. how many now?\n"
 *   completion  "47+8=55\n55*3=165\n#### 165"
 *   answer      "165"
 *
 * Difficulty knobs: `digits` (size of the numbers the problem states; every intermediate value
 * stays below 10^(digits+1)), `factorDigits` (size of multipliers and divisors), `minSteps` ..
 * `maxSteps` (operations per problem) and `ops` (which of + - * / may appear; division is always
 * exact). `maxChars` caps prompt + completion so an example fits a small model's context.
 */
import { Schema } from "effect"
import type { Rng } from "../model/Rng.ts"
import { finalAnswerGrader } from "./Answer.ts"
import { between, makeTask, pick, type Task, withDefaults } from "./Task.ts"

export type ArithOp = "+" | "-" | "*" | "/"

const intBetween = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))

/** The knobs as a Schema (every field optional; see `arithDefaults`). */
export const ArithKnobs = Schema.Struct({
  digits: Schema.optionalKey(intBetween(1, 6)),
  factorDigits: Schema.optionalKey(intBetween(1, 3)),
  minSteps: Schema.optionalKey(intBetween(1, 8)),
  maxSteps: Schema.optionalKey(intBetween(1, 8)),
  ops: Schema.optionalKey(Schema.Array(Schema.Literals(["+", "-", "*", "/"])).check(Schema.isMinLength(1))),
  maxChars: Schema.optionalKey(intBetween(32, 4096))
})
export type ArithKnobs = typeof ArithKnobs.Type

export interface ArithSettings {
  readonly digits: number
  readonly factorDigits: number
  readonly minSteps: number
  readonly maxSteps: number
  readonly ops: ReadonlyArray<ArithOp>
  readonly maxChars: number
}

/**
 * One-digit numbers in the question, one to three steps of + - * with every intermediate value
 * below 100: problems of at most ~110 characters. The base model learns these to ≥95% in an
 * hour on two cores (a half-width model trained the same way does not; see models/README.md).
 * Two-digit numbers (`digits: 2`) were out of reach for that budget: 2% after 1,500 steps.
 * Raise `digits`, `maxSteps` or add "/" to make it harder.
 */
export const arithDefaults: ArithSettings = {
  digits: 1,
  factorDigits: 1,
  minSteps: 1,
  maxSteps: 3,
  ops: ["+", "-", "*"],
  maxChars: 120
}

/** Cross-field problems with resolved knobs, or `undefined` when they are consistent. */
export const arithKnobsProblem = (k: ArithSettings): string | undefined =>
  k.minSteps > k.maxSteps ? `minSteps (${k.minSteps}) must not exceed maxSteps (${k.maxSteps})` : undefined

export const resolveArithKnobs = (knobs: ArithKnobs = {}): ArithSettings => {
  const k = withDefaults(arithDefaults, knobs)
  return { ...k, ops: [...new Set(k.ops)].sort() }
}

const NAMES = [
  "ann", "bob", "cal", "dee", "eli", "fay", "gus", "hal", "ivy", "jon", "kai", "lea",
  "max", "ned", "oli", "pam", "ray", "sue", "tom", "uma", "val", "wes", "yan", "zoe"
]
const THINGS = [
  "apples", "eggs", "coins", "books", "cards", "pens", "rocks", "shells", "stamps", "cups",
  "beads", "nuts", "toys", "plums", "jars", "keys", "seeds", "shirts", "bells", "kites"
]

/** The clause that describes applying `op` with operand `n` ("then ..." unless it is the first). */
const clause = (rng: Rng, op: ArithOp, n: number, first: boolean): string => (first ? "" : "then ") + action(rng, op, n, first)

const action = (rng: Rng, op: ArithOp, n: number, first: boolean): string => {
  switch (op) {
    case "+":
      return `${pick(rng, ["gets", "buys", "finds", "wins"])} ${n} more`
    case "-":
      return `${pick(rng, ["loses", "sells", "gives away", "uses"])} ${n}`
    case "*": {
      const multiplies = n === 2 ? "doubles them" : n === 3 ? "triples them" : `multiplies them by ${n}`
      return first ? multiplies : pick(rng, [multiplies, `has ${n} times as many`])
    }
    case "/":
      return pick(rng, [n === 2 ? "halves them" : `divides them by ${n}`, `keeps 1 of every ${n}`])
  }
}

interface Step {
  readonly op: ArithOp
  readonly operand: number
  readonly before: number
  readonly after: number
}

/** The operand for `op` applied to `value`, or `undefined` when `op` cannot apply (bounds, exactness). */
const operandFor = (rng: Rng, k: ArithSettings, op: ArithOp, value: number): number | undefined => {
  const maxNumber = 10 ** k.digits - 1
  const maxValue = 10 ** (k.digits + 1) - 1
  const maxFactor = 10 ** k.factorDigits - 1
  switch (op) {
    case "+":
      return value + 1 > maxValue ? undefined : between(rng, 1, Math.min(maxNumber, maxValue - value))
    case "-":
      return value < 1 ? undefined : between(rng, 1, Math.min(maxNumber, value))
    case "*": {
      const hi = Math.min(maxFactor, Math.floor(maxValue / Math.max(value, 1)))
      return value < 1 || hi < 2 ? undefined : between(rng, 2, hi)
    }
    case "/": {
      const divisors: Array<number> = []
      for (let d = 2; d <= Math.min(maxFactor, value); d++) if (value % d === 0) divisors.push(d)
      return value < 1 || divisors.length === 0 ? undefined : pick(rng, divisors)
    }
  }
}

const apply = (op: ArithOp, a: number, b: number): number =>
  op === "+" ? a + b : op === "-" ? a - b : op === "*" ? a * b : a / b

/** The steps of one problem, or `undefined` when the draw ran into a value no allowed op can extend. */
const drawSteps = (rng: Rng, k: ArithSettings, start: number, count: number): Array<Step> | undefined => {
  const steps: Array<Step> = []
  let value = start
  for (let s = 0; s < count; s++) {
    const options: Array<[ArithOp, number]> = []
    for (const op of k.ops) {
      const operand = operandFor(rng, k, op, value)
      if (operand !== undefined) options.push([op, operand])
    }
    if (options.length === 0) return undefined
    const [op, operand] = pick(rng, options)
    const after = apply(op, value, operand)
    steps.push({ op, operand, before: value, after })
    value = after
  }
  return steps
}

/** The `arith` task with the given knobs (defaults filled in) and seed. */
export const arith = (knobs: ArithKnobs = {}, seed = 0): Task<ArithSettings> => {
  const k = resolveArithKnobs(knobs)
  const problem = arithKnobsProblem(k)
  if (problem !== undefined) throw new RangeError(`arith: ${problem}`)
  return makeTask({
    name: "arith",
    knobs: k,
    seed,
    grader: finalAnswerGrader,
    draw: (rng) => {
      const start = between(rng, 1, 10 ** k.digits - 1)
      const steps = drawSteps(rng, k, start, between(rng, k.minSteps, k.maxSteps))
      if (steps === undefined) return undefined
      const name = pick(rng, NAMES)
      const thing = pick(rng, THINGS)
      const clauses = steps.map((s, i) => clause(rng, s.op, s.operand, i === 0))
      const prompt = `${name} has ${start} ${thing}, ${clauses.join(", ")}. how many now?\n`
      const answer = String(steps[steps.length - 1].after)
      const completion = steps.map((s) => `${s.before}${s.op}${s.operand}=${s.after}\n`).join("") + `#### ${answer}`
      if (prompt.length + completion.length > k.maxChars) return undefined
      // The chain of thought is a function of the numbers and ops alone, so keying the split
      // on it keeps every rewording of the same computation in one split.
      return { example: { prompt, completion, answer }, key: completion }
    }
  })
}
