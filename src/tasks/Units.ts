/**
 * `units`: unit conversion word problems with one step of working.
 *
 *   prompt      "how many grams in 7 kilograms?\n"
 *   completion  "7*1000=7000\n#### 7000"
 *   answer      "7000"
 *
 *   prompt      "how many decades in 360 years?\n"
 *   completion  "360/10=36\n#### 36"
 *
 * The model has to know the factor of each pair of units (10, 100 or 1000) and multiply or
 * divide by it; a division always comes out whole. Factors are powers of ten so that a test
 * problem is made of what training taught (the pair's factor, appending or dropping zeros):
 * with factors like 60, 24 and 7 and quantities up to 12 there were 264 problems, and a model
 * that learnt the training ones (loss 0.001) got 30% of the unseen 26 right. Knobs: `maxQuantity` (the
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

/** Up to 99 of the larger unit, both directions: 2,376 distinct problems, about 238 of them in the test split. */
export const unitsDefaults: UnitsSettings = { maxQuantity: 99, ops: ["*", "/"], maxChars: 120 }

export const resolveUnitsKnobs = (knobs: UnitsKnobs = {}): UnitsSettings => {
  const k = withDefaults(unitsDefaults, knobs)
  return { ...k, ops: [...new Set(k.ops)].sort() }
}

/** [larger unit (singular, plural), smaller unit (singular, plural), how many smaller make one larger]. */
const CONVERSIONS: ReadonlyArray<readonly [readonly [string, string], readonly [string, string], number]> = [
  [["centimeter", "centimeters"], ["millimeter", "millimeters"], 10],
  [["decade", "decades"], ["year", "years"], 10],
  [["meter", "meters"], ["centimeter", "centimeters"], 100],
  [["century", "centuries"], ["year", "years"], 100],
  [["dollar", "dollars"], ["cent", "cents"], 100],
  [["meter", "meters"], ["millimeter", "millimeters"], 1000],
  [["kilometer", "kilometers"], ["meter", "meters"], 1000],
  [["kilogram", "kilograms"], ["gram", "grams"], 1000],
  [["gram", "grams"], ["milligram", "milligrams"], 1000],
  [["liter", "liters"], ["milliliter", "milliliters"], 1000],
  [["second", "seconds"], ["millisecond", "milliseconds"], 1000],
  [["millennium", "millennia"], ["year", "years"], 1000]
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
