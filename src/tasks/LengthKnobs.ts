/**
 * The knobs of the tasks that work on one string (`sort`, `reverse`, `count`): how long it is
 * (`minLength` .. `maxLength` characters) and `maxChars` for prompt + completion. Each task
 * has its own defaults.
 */
import { Schema } from "effect"
import { intBetween, rangeProblem } from "./Task.ts"

export const LengthKnobs = Schema.Struct({
  minLength: Schema.optionalKey(intBetween(1, 40)),
  maxLength: Schema.optionalKey(intBetween(1, 40)),
  maxChars: Schema.optionalKey(intBetween(32, 4096))
})
export type LengthKnobs = typeof LengthKnobs.Type

export interface LengthSettings {
  readonly minLength: number
  readonly maxLength: number
  readonly maxChars: number
}

export const lengthKnobsProblem = (k: LengthSettings): string | undefined =>
  rangeProblem("minLength", k.minLength, "maxLength", k.maxLength)
