/**
 * `program`: code generation graded by execution, the analogue of MBPP / HumanEval pass@1.
 * The prompt specifies an integer function as an infix formula; the model writes a program in
 * the postfix stack language of `StackLang.ts`; grading runs the program in the bounded
 * interpreter on hidden test inputs and compares outputs. Any program that computes the same
 * function passes (`x3+` and `3x+` alike); one that loops, overflows or errors scores 0.
 *
 *   prompt      "f(x)=max(x*3,7)-x%4\n"
 *   completion  "x3*7mx4%-"
 *   answer      "-7=6,0=7,4=12,11=30,15=42"     (hidden tests: input=output, comma separated)
 *
 * Formula language: x, the digits 1-9, + - * / % (floor division and modulo, always by a
 * constant 2-9), max(a,b), min(a,b), abs(a), sq(a) = a*a; usual precedence, left to right.
 * Translating needs real work from the model: reordering operands around precedence and
 * parentheses, mapping calls to instructions (max → m, sq → d*).
 *
 * Difficulty knobs: `minOps` .. `maxOps` (operators and calls in the formula), `ops` (which may
 * appear), `tests` (hidden inputs per problem, drawn from -10..20). `maxChars` caps
 * prompt + completion.
 */
import { Schema } from "effect"
import type { Rng } from "../model/Rng.ts"
import { defaultLimits, floorDiv, floorMod, parses, run } from "./StackLang.ts"
import type { Example, Grader } from "./Task.ts"
import { between, makeTask, pick, type Task, withDefaults } from "./Task.ts"

export type FormulaOp = "+" | "-" | "*" | "/" | "%" | "max" | "min" | "abs" | "sq"

export const formulaOps: ReadonlyArray<FormulaOp> = ["+", "-", "*", "/", "%", "max", "min", "abs", "sq"]

const intBetween = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))

/** The knobs as a Schema (every field optional; see `programDefaults`). */
export const ProgramKnobs = Schema.Struct({
  minOps: Schema.optionalKey(intBetween(1, 8)),
  maxOps: Schema.optionalKey(intBetween(1, 8)),
  ops: Schema.optionalKey(Schema.Array(Schema.Literals(formulaOps)).check(Schema.isMinLength(1))),
  tests: Schema.optionalKey(intBetween(1, 20)),
  maxChars: Schema.optionalKey(intBetween(32, 4096))
})
export type ProgramKnobs = typeof ProgramKnobs.Type

export interface ProgramSettings {
  readonly minOps: number
  readonly maxOps: number
  readonly ops: ReadonlyArray<FormulaOp>
  readonly tests: number
  readonly maxChars: number
}

/**
 * One to three operators from the full set: formulas up to ~25 characters and programs up to
 * ~10 instructions. Five hidden tests make a lucky wrong program rare. Raise `maxOps` for
 * deeper nesting (the half-width model should fall off first there).
 */
export const programDefaults: ProgramSettings = {
  minOps: 1,
  maxOps: 3,
  ops: formulaOps,
  tests: 5,
  maxChars: 120
}

export const programKnobsProblem = (k: ProgramSettings): string | undefined =>
  k.minOps > k.maxOps ? `minOps (${k.minOps}) must not exceed maxOps (${k.maxOps})` : undefined

export const resolveProgramKnobs = (knobs: ProgramKnobs = {}): ProgramSettings => {
  const k = withDefaults(programDefaults, knobs)
  return { ...k, ops: formulaOps.filter((op) => k.ops.includes(op)) }
}

/** Hidden test inputs are drawn from this range. */
export const INPUT_MIN = -10
export const INPUT_MAX = 20
/** Formulas whose value (or any intermediate) leaves ±LIMIT on a test input are redrawn. */
const VALUE_LIMIT = 100_000

export type Formula =
  | { readonly kind: "x" }
  | { readonly kind: "const"; readonly value: number }
  | { readonly kind: "binary"; readonly op: "+" | "-" | "*" | "/" | "%"; readonly left: Formula; readonly right: Formula }
  | { readonly kind: "call2"; readonly op: "max" | "min"; readonly left: Formula; readonly right: Formula }
  | { readonly kind: "call1"; readonly op: "abs" | "sq"; readonly arg: Formula }

const precedence = (f: Formula): number =>
  f.kind === "binary" ? (f.op === "+" || f.op === "-" ? 1 : 2) : 3

/**
 * Infix text with the fewest parentheses that still parse back to the same tree: a left
 * operand is wrapped when it binds looser than its operator, a right operand when it binds
 * looser or equally (so "a-(b-c)" and "a*(b/c)" keep theirs).
 */
export const toInfix = (f: Formula): string => {
  switch (f.kind) {
    case "x":
      return "x"
    case "const":
      return String(f.value)
    case "call1":
      return `${f.op}(${toInfix(f.arg)})`
    case "call2":
      return `${f.op}(${toInfix(f.left)},${toInfix(f.right)})`
    case "binary": {
      const p = precedence(f)
      const left = precedence(f.left) < p ? `(${toInfix(f.left)})` : toInfix(f.left)
      const right = precedence(f.right) <= p ? `(${toInfix(f.right)})` : toInfix(f.right)
      return `${left}${f.op}${right}`
    }
  }
}

/** The reference program: the formula in postfix, with max → m, min → n, abs → a, sq → d*. */
export const toProgram = (f: Formula): string => {
  switch (f.kind) {
    case "x":
      return "x"
    case "const":
      return String(f.value)
    case "call1":
      return toProgram(f.arg) + (f.op === "abs" ? "a" : "d*")
    case "call2":
      return toProgram(f.left) + toProgram(f.right) + (f.op === "max" ? "m" : "n")
    case "binary":
      return toProgram(f.left) + toProgram(f.right) + f.op
  }
}

class OutOfRange extends Error {}

/** The formula's value at `x`; throws `OutOfRange` if any intermediate leaves ±limit. */
const evaluate = (f: Formula, x: number, limit: number): number => {
  const check = (v: number) => {
    if (Math.abs(v) > limit) throw new OutOfRange()
    return v
  }
  switch (f.kind) {
    case "x":
      return x
    case "const":
      return f.value
    case "call1": {
      const a = evaluate(f.arg, x, limit)
      return check(f.op === "abs" ? Math.abs(a) : a * a)
    }
    case "call2": {
      const a = evaluate(f.left, x, limit)
      const b = evaluate(f.right, x, limit)
      return f.op === "max" ? Math.max(a, b) : Math.min(a, b)
    }
    case "binary": {
      const a = evaluate(f.left, x, limit)
      const b = evaluate(f.right, x, limit)
      switch (f.op) {
        case "+":
          return check(a + b)
        case "-":
          return check(a - b)
        case "*":
          return check(a * b)
        case "/":
          return floorDiv(a, b)
        case "%":
          return floorMod(a, b)
      }
    }
  }
}

const X: Formula = { kind: "x" }

/**
 * A random formula with exactly `n` operators. Every operator has `x` somewhere below it, so
 * nothing folds to a constant; only a leaf may be a constant, and divisors are constants 2-9.
 */
const drawFormula = (rng: Rng, ops: ReadonlyArray<FormulaOp>, n: number, needX: boolean): Formula => {
  if (n === 0) return needX || rng.int(2) === 0 ? X : { kind: "const", value: between(rng, 1, 9) }
  const op = pick(rng, ops)
  switch (op) {
    case "abs":
    case "sq":
      return { kind: "call1", op, arg: drawFormula(rng, ops, n - 1, true) }
    case "/":
    case "%":
      return { kind: "binary", op, left: drawFormula(rng, ops, n - 1, true), right: { kind: "const", value: between(rng, 2, 9) } }
    default: {
      const leftOps = rng.int(n)
      const xOnLeft = rng.int(2) === 0
      const left = drawFormula(rng, ops, leftOps, xOnLeft)
      const right = drawFormula(rng, ops, n - 1 - leftOps, !xOnLeft)
      return op === "max" || op === "min" ? { kind: "call2", op, left, right } : { kind: "binary", op, left, right }
    }
  }
}

/** Hidden tests, encoded as the example's answer: "in=out" pairs joined by commas. */
export const encodeTests = (tests: ReadonlyArray<readonly [number, number]>): string =>
  tests.map(([input, output]) => `${input}=${output}`).join(",")

/** The tests an answer encodes; `undefined` if it is not in the `encodeTests` format. */
export const decodeTests = (answer: string): Array<[number, number]> | undefined => {
  const tests: Array<[number, number]> = []
  for (const pair of answer.split(",")) {
    const match = /^(-?\d+)=(-?\d+)$/.exec(pair.trim())
    if (match === null) return undefined
    tests.push([Number(match[1]), Number(match[2])])
  }
  return tests.length > 0 ? tests : undefined
}

/** The program a completion contains: its first line, trimmed; `undefined` if empty. */
const extractProgram = (completion: string): string | undefined => {
  const line = completion.split("\n", 1)[0].trim()
  return line.length > 0 ? line : undefined
}

/** Whether a completion's program parses (known instructions, balanced brackets, not too long), right or wrong. */
export const programParses = (completion: string): boolean => {
  const program = extractProgram(completion)
  return program !== undefined && parses(program, defaultLimits)
}

/** pass@1 grading: the program must produce every hidden test's output within the interpreter's limits. */
export const programGrader: Grader = {
  metric: "pass@1",
  extract: extractProgram,
  grade: (example: Example, completion: string) => {
    const program = extractProgram(completion)
    const tests = decodeTests(example.answer)
    if (program === undefined || tests === undefined) return false
    return tests.every(([input, output]) => {
      const result = run(program, input, defaultLimits)
      return result.ok && result.value === output
    })
  }
}

/** The `program` task with the given knobs (defaults filled in) and seed. */
export const program = (knobs: ProgramKnobs = {}, seed = 0): Task<ProgramSettings> => {
  const k = resolveProgramKnobs(knobs)
  const problem = programKnobsProblem(k)
  if (problem !== undefined) throw new RangeError(`program: ${problem}`)
  const inputs = Array.from({ length: INPUT_MAX - INPUT_MIN + 1 }, (_, i) => INPUT_MIN + i)
  return makeTask({
    name: "program",
    knobs: k,
    seed,
    grader: programGrader,
    draw: (rng) => {
      const formula = drawFormula(rng, k.ops, between(rng, k.minOps, k.maxOps), true)
      const xs = rng.shuffle(inputs).slice(0, k.tests).sort((a, b) => a - b)
      let tests: Array<[number, number]>
      try {
        tests = xs.map((x) => [x, evaluate(formula, x, VALUE_LIMIT) || 0])
      } catch (e) {
        if (e instanceof OutOfRange) return undefined
        throw e
      }
      // A function that is constant on the tests would let a constant program pass.
      if (k.tests > 1 && new Set(tests.map(([, y]) => y)).size === 1) return undefined
      const prompt = `f(x)=${toInfix(formula)}\n`
      const completion = toProgram(formula)
      if (prompt.length + completion.length > k.maxChars || completion.length > defaultLimits.maxLength) return undefined
      return { example: { prompt, completion, answer: encodeTests(tests) }, key: completion }
    }
  })
}
