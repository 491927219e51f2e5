/**
 * The tiny postfix stack language that `program` completions are written in, and its bounded
 * interpreter. A program is a string of one-character instructions run on a stack of integers;
 * it starts with an empty stack, reads its input with `x`, and must end with exactly one value
 * on the stack: the output.
 *
 *   x          push the input
 *   0-9        push that digit (one character = one instruction, so "12" pushes 1 then 2)
 *   + - *      pop b, pop a, push a op b
 *   / %        floor division and floor modulo (the result of % has the sign of b); b = 0 is an error
 *   m n        max, min of a and b
 *   < > =      push 1 if a < b (a > b, a = b), else 0
 *   a          absolute value of the top
 *   d s o p    dup (a → a a), swap (a b → b a), over (a b → a b a), pop (a →)
 *   ?          pop c, pop b, pop a; push a if c ≠ 0 else b
 *   [ ... ]    loop: at `[` skip past the matching `]` if the top is 0; at `]` jump back
 *              to just after the matching `[` if the top is not 0 (the top is not popped)
 *   space      ignored
 *
 * Every run is bounded: program length, executed steps, stack depth and the magnitude of every
 * value are limited, so a program that loops, blows up the stack, grows numbers without bound or
 * errors simply fails, and a failed run scores 0.
 */

export interface Limits {
  /** Longest program accepted, in characters. */
  readonly maxLength: number
  /** Instructions executed before the run is stopped. */
  readonly maxSteps: number
  /** Deepest stack allowed. */
  readonly maxStack: number
  /** Largest absolute value any instruction may produce. */
  readonly maxAbs: number
}

export const defaultLimits: Limits = { maxLength: 64, maxSteps: 1000, maxStack: 64, maxAbs: 1_000_000_000 }

export type RunError =
  | "too-long"
  | "bad-instruction"
  | "unbalanced"
  | "underflow"
  | "stack-overflow"
  | "step-limit"
  | "number-too-large"
  | "division-by-zero"
  | "no-single-result"

export type RunResult =
  | { readonly ok: true; readonly value: number; readonly steps: number }
  | { readonly ok: false; readonly error: RunError; readonly steps: number; readonly at?: number }

/** The characters the language uses (besides space), for reference and tests. */
export const INSTRUCTIONS = "x0123456789+-*/%mn<>=adsop?[]"

/** a div b rounded toward negative infinity (b ≠ 0, both integers). */
export const floorDiv = (a: number, b: number): number => {
  const q = Math.trunc(a / b)
  return a - q * b !== 0 && a < 0 !== b < 0 ? q - 1 : q
}

/** a mod b with the sign of b (b ≠ 0), so floorDiv(a, b) * b + floorMod(a, b) = a. */
export const floorMod = (a: number, b: number): number => a - b * floorDiv(a, b)

const isDigit = (c: string) => c >= "0" && c <= "9"
const valid = new Set(INSTRUCTIONS + " ")

type Checked =
  | { readonly ok: true; readonly jump: Int32Array }
  | { readonly ok: false; readonly error: "too-long" | "bad-instruction" | "unbalanced"; readonly at?: number }

/** Length, instructions and brackets, and where each bracket jumps to. */
const check = (program: string, limits: Limits): Checked => {
  if (program.length > limits.maxLength) return { ok: false, error: "too-long" }
  const jump = new Int32Array(program.length)
  const open: Array<number> = []
  for (let i = 0; i < program.length; i++) {
    const c = program[i]
    if (!valid.has(c)) return { ok: false, error: "bad-instruction", at: i }
    if (c === "[") open.push(i)
    else if (c === "]") {
      const j = open.pop()
      if (j === undefined) return { ok: false, error: "unbalanced", at: i }
      jump[i] = j
      jump[j] = i
    }
  }
  if (open.length > 0) return { ok: false, error: "unbalanced", at: open[open.length - 1] }
  return { ok: true, jump }
}

/** Whether `program` parses: within the length limit, known instructions only, brackets balanced. */
export const parses = (program: string, limits: Limits = defaultLimits): boolean => check(program, limits).ok

/** Runs `program` on `input` within `limits`. Never throws. */
export const run = (program: string, input: number, limits: Limits = defaultLimits): RunResult => {
  // Validate and match brackets up front, so a bad program fails before doing anything.
  const checked = check(program, limits)
  if (!checked.ok) return { ok: false, error: checked.error, steps: 0, ...(checked.at !== undefined ? { at: checked.at } : {}) }
  const jump = checked.jump

  const stack: Array<number> = []
  let steps = 0
  let pc = 0
  const fail = (error: RunError): RunResult => ({ ok: false, error, steps, at: pc })
  while (pc < program.length) {
    const c = program[pc]
    if (c === " ") {
      pc++
      continue
    }
    if (++steps > limits.maxSteps) return fail("step-limit")
    const need = c === "?" ? 3 : "+-*/%mn<>=so".includes(c) ? 2 : "adp[]".includes(c) ? 1 : 0
    if (stack.length < need) return fail("underflow")
    let result: number | undefined
    if (c === "x") result = input
    else if (isDigit(c)) result = c.charCodeAt(0) - 48
    else if (c === "[") {
      if (stack[stack.length - 1] === 0) pc = jump[pc]
    } else if (c === "]") {
      if (stack[stack.length - 1] !== 0) pc = jump[pc]
    } else if (c === "d") result = stack[stack.length - 1]
    else if (c === "o") result = stack[stack.length - 2]
    else if (c === "p") stack.pop()
    else if (c === "s") {
      const b = stack.pop()!
      const a = stack.pop()!
      stack.push(b, a)
    } else if (c === "a") result = Math.abs(stack.pop()!)
    else if (c === "?") {
      const cond = stack.pop()!
      const b = stack.pop()!
      const a = stack.pop()!
      result = cond !== 0 ? a : b
    } else {
      const b = stack.pop()!
      const a = stack.pop()!
      switch (c) {
        case "+":
          result = a + b
          break
        case "-":
          result = a - b
          break
        case "*":
          result = a * b
          break
        case "/":
        case "%":
          if (b === 0) return fail("division-by-zero")
          result = c === "/" ? floorDiv(a, b) : floorMod(a, b)
          break
        case "m":
          result = Math.max(a, b)
          break
        case "n":
          result = Math.min(a, b)
          break
        case "<":
          result = a < b ? 1 : 0
          break
        case ">":
          result = a > b ? 1 : 0
          break
        case "=":
          result = a === b ? 1 : 0
          break
      }
    }
    if (result !== undefined) {
      if (Math.abs(result) > limits.maxAbs) return fail("number-too-large")
      if (stack.length >= limits.maxStack) return fail("stack-overflow")
      stack.push(result === 0 ? 0 : result) // no -0
    }
    pc++
  }
  return stack.length === 1 ? { ok: true, value: stack[0], steps } : { ok: false, error: "no-single-result", steps }
}
