/** The base-training recipe: the bundled model's data order stays as it was, and `--tasks` mixes. */
import { describe, expect, it } from "vitest"
import { baseBatch, baseTasks, defaultBaseRecipe, formatTaskMix, mixTasks, parseTaskMix } from "../../src/tune/BaseTraining.ts"

describe("base training data", () => {
  it("the bundled recipe draws the tasks and batch shapes it was trained with", () => {
    const tasks = baseTasks(defaultBaseRecipe.seed)
    const drawn = Array.from({ length: 12 }, (_, step) => {
      const { batch, task } = baseBatch(defaultBaseRecipe, tasks, step)
      return `${task}:${batch.batchSize}x${batch.seqLen}`
    })
    // Pinned from the recipe that trained models/base (before tasks could be chosen).
    expect(drawn.join(" ")).toBe(
      "program:96x32 arith:32x120 arith:32x122 arith:32x122 arith:32x118 program:96x37 arith:32x121 program:96x34 " +
        "arith:32x122 general:32x121 arith:32x122 arith:32x122"
    )
  })

  it("a chosen mix trains on its tasks only, about as often as their weights say", () => {
    const mix = parseTaskMix("sort=3,lookup")
    if ("problem" in mix) throw new Error(mix.problem)
    const recipe = { ...defaultBaseRecipe, mix, batchSizes: { sort: 4, lookup: 4 } }
    const tasks = baseTasks(recipe.seed, mixTasks(recipe))
    const counts = { sort: 0, lookup: 0 }
    for (let step = 0; step < 400; step++) counts[baseBatch(recipe, tasks, step).task as "sort" | "lookup"]++
    expect(counts.sort + counts.lookup).toBe(400)
    expect(counts.sort / 400).toBeGreaterThan(0.65)
    expect(counts.sort / 400).toBeLessThan(0.85)
  })
})

describe("parseTaskMix", () => {
  it("reads names with optional weights, and writes the default mix back as --tasks shows it", () => {
    expect(parseTaskMix("arith, units=2.5")).toEqual({ arith: 1, units: 2.5 })
    expect(parseTaskMix("units=3,all=0.5")).toEqual({
      units: 3, arith: 0.5, program: 0.5, sort: 0.5, reverse: 0.5, count: 0.5, compare: 0.5, lookup: 0.5, general: 0.5
    })
    expect(parseTaskMix("all=0")).toMatchObject({ problem: expect.stringContaining("above 0") })
    expect(formatTaskMix(defaultBaseRecipe.mix)).toBe("arith=0.6,program=0.3,general=0.1")
    expect(parseTaskMix(formatTaskMix(defaultBaseRecipe.mix))).toEqual(defaultBaseRecipe.mix)
  })

  it("says what is wrong with a list it cannot train on", () => {
    expect(parseTaskMix("arith,poetry")).toMatchObject({ problem: expect.stringContaining("poetry is not a built-in task") })
    expect(parseTaskMix("sort=0")).toMatchObject({ problem: expect.stringContaining("above 0") })
    expect(parseTaskMix("sort=x")).toMatchObject({ problem: expect.stringContaining("above 0") })
    expect(parseTaskMix("sort=1=2")).toMatchObject({ problem: expect.stringContaining("above 0") })
    expect(parseTaskMix("sort,sort")).toMatchObject({ problem: expect.stringContaining("named twice") })
    expect(parseTaskMix(" , ")).toMatchObject({ problem: "name at least one task" })
  })
})
