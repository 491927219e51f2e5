/**
 * `units`: unit conversion word problems with one step of working.
 *
 *   prompt      "how many minutes in 7 hours?\n"
 *   completion  "7*60=420\n#### 420"
 *   answer      "420"
 *
 *   prompt      "how many feet in 36 inches?\n"
 *   completion  "36/12=3\n#### 3"
 *
 * The model has to know the factor of each pair of units (60, 24, 7, 12, 10, 100, 1000) and
 * multiply or divide by it; a division always comes out whole. Knobs: `maxQuantity` (the
 * larger unit's count is 1 .. maxQuantity), `ops` (convert to the smaller unit with "*", to
 * the larger with "/") and `maxChars`.
 */
import { Schema } from "effect"
import { finalAnswerGrader } from "./Answer.ts"
import { between, intBetween, makeTask, pick, type Task, withDefaults } from "./Task.ts"

export type UnitsOp = "*" | "/"

export const UnitsKnobs = Schema.Struct({
  maxQuantity: Schema.optionalKey(intBetween(1, 999)),
  ops: Schema.optionalKey(Schema.Array(Schema.Literals(["*", "/"])).check(Schema.isMinLength(1))),
  maxChars: Schema.optionalKey(intBetween(32, 4096))
})
export type UnitsKnobs = typeof UnitsKnobs.Type

export interface UnitsSettings {
  readonly maxQuantity: number
  readonly ops: ReadonlyArray<UnitsOp>
  readonly maxChars: number
}

/**
 * Up to 12 of the larger unit, both directions: 264 distinct problems, so a test split of
 * about 26 that training never shows. (Up to 50, two-digit by two-digit products, a model of
 * the bundled size was at 2.5% after 2,000 steps of six skills.)
 */
export const unitsDefaults: UnitsSettings = { maxQuantity: 12, ops: ["*", "/"], maxChars: 120 }

export const resolveUnitsKnobs = (knobs: UnitsKnobs = {}): UnitsSettings => {
  const k = withDefaults(unitsDefaults, knobs)
  return { ...k, ops: [...new Set(k.ops)].sort() }
}

/** [larger unit (singular, plural), smaller unit (singular, plural), how many smaller make one larger]. */
const CONVERSIONS: ReadonlyArray<readonly [readonly [string, string], readonly [string, string], number]> = [
  [["hour", "hours"], ["minute", "minutes"], 60],
  [["minute", "minutes"], ["second", "seconds"], 60],
  [["day", "days"], ["hour", "hours"], 24],
  [["week", "weeks"], ["day", "days"], 7],
  [["year", "years"], ["month", "months"], 12],
  [["foot", "feet"], ["inch", "inches"], 12],
  [["meter", "meters"], ["centimeter", "centimeters"], 100],
  [["centimeter", "centimeters"], ["millimeter", "millimeters"], 10],
  [["kilometer", "kilometers"], ["meter", "meters"], 1000],
  [["kilogram", "kilograms"], ["gram", "grams"], 1000],
  [["liter", "liters"], ["milliliter", "milliliters"], 1000]
]

const counted = (n: number, [singular, plural]: readonly [string, string]) => `${n} ${n === 1 ? singular : plural}`

/** The `units` task with the given knobs (defaults filled in) and seed. */
export const units = (knobs: UnitsKnobs = {}, seed = 0): Task<UnitsSettings> => {
  const k = resolveUnitsKnobs(knobs)
  return makeTask({
    name: "units",
    knobs: k,
    seed,
    grader: finalAnswerGrader,
    draw: (rng) => {
      const [larger, smaller, factor] = pick(rng, CONVERSIONS)
      const op = pick(rng, k.ops)
      const quantity = between(rng, 1, k.maxQuantity)
      const small = quantity * factor
      const [prompt, completion] = op === "*"
        ? [`how many ${smaller[1]} in ${counted(quantity, larger)}?\n`, `${quantity}*${factor}=${small}\n#### ${small}`]
        : [`how many ${larger[1]} in ${counted(small, smaller)}?\n`, `${small}/${factor}=${quantity}\n#### ${quantity}`]
      if (prompt.length + completion.length > k.maxChars) return undefined
      return { example: { prompt, completion, answer: op === "*" ? String(small) : String(quantity) }, key: prompt }
    }
  })
}
