/**
 * GSM8K-style final answers: the text after the first `####` up to the end of its line, and
 * a normal form under which equivalent writings of a number compare equal
 * ("1,000" = "1000" = "1000.0" = "$1000" = "+1000"). Used by `arith` and by user data in the
 * {"question","answer"} shape.
 */
import type { Example, Grader } from "./Task.ts"

const FINAL_LINE = /####[ \t]*(.*)$/m
const NUMBER = /^([-+]?)(\d*)(?:\.(\d*))?$/

/** The raw text after the first `####` up to the end of its line, trimmed; `undefined` if none or empty. */
export const finalAnswer = (text: string): string | undefined => {
  const match = FINAL_LINE.exec(text)
  if (match === null) return undefined
  const raw = match[1].trim()
  return raw.length === 0 ? undefined : raw
}

/**
 * The canonical decimal string of a number written with optional sign, thousands commas, a
 * leading `$`, inner spaces and trailing zeros; `undefined` if `text` is not such a number.
 * Exact for any length (no floating point): "007" → "7", "1,000.50" → "1000.5", "-0.0" → "0".
 */
export const normalizeNumber = (text: string): string | undefined => {
  const compact = text.replace(/[\s,$]/g, "")
  const match = NUMBER.exec(compact)
  if (match === null) return undefined
  const [, sign, intDigits, fracDigits = ""] = match
  if (intDigits.length === 0 && fracDigits.length === 0) return undefined
  const int = intDigits.replace(/^0+/, "") || "0"
  const frac = fracDigits.replace(/0+$/, "")
  const body = frac.length > 0 ? `${int}.${frac}` : int
  return sign === "-" && body !== "0" ? `-${body}` : body
}

/** A number in normal form, or otherwise the text lower-cased with whitespace collapsed. */
export const normalizeAnswer = (text: string): string =>
  normalizeNumber(text) ?? text.trim().replace(/\s+/g, " ").toLowerCase()

/** Grades completions that end in a `#### <answer>` line against `example.answer`. */
export const finalAnswerGrader: Grader = {
  metric: "accuracy",
  extract: (completion) => {
    const raw = finalAnswer(completion)
    return raw === undefined ? undefined : normalizeAnswer(raw)
  },
  grade: (example: Example, completion: string) => {
    const raw = finalAnswer(completion)
    return raw !== undefined && normalizeAnswer(raw) === normalizeAnswer(example.answer)
  }
}

/** Grades a completion by exact match (whitespace at the ends ignored) against `example.answer`. */
export const exactMatchGrader: Grader = {
  metric: "accuracy",
  extract: (completion) => completion.trim() || undefined,
  grade: (example: Example, completion: string) => completion.trim() === example.answer.trim()
}

/**
 * Grades completions that end in a `#### <answer>` line by the exact text of the answer (ends
 * trimmed), for answers that are strings rather than numbers: the sorted digits "0129" must not
 * pass as "129", as they would under `finalAnswerGrader`'s number normal form.
 */
export const exactFinalAnswerGrader: Grader = {
  metric: "accuracy",
  extract: finalAnswer,
  grade: (example: Example, completion: string) => finalAnswer(completion) === example.answer.trim()
}
