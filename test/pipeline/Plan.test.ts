/**
 * Plan parsing: defaults, per-iteration tuning budgets, and malformed plans, whose every
 * problem is reported at once with its path and line.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { fileURLToPath } from "node:url"
import { parsePlan, plannedTuners, plannedTuningSteps, planSeqLen, readPlan, tuningStepsAt } from "../../src/pipeline/Plan.ts"

const minimal = `model: base
target: { parameters: 0.5 }
data:
  tune: [{ task: arith }]
  calibration: [{ task: arith }]
  evaluate: [{ task: arith }]
`

const problemsOf = (text: string) =>
  parsePlan(text, "plan.yaml").pipe(Effect.flip, Effect.map((e) => e.problems))

describe("a plan", () => {
  it.effect("fills in defaults", () =>
    Effect.gen(function*() {
      const plan = yield* parsePlan(minimal, "plan.yaml")
      expect(plan.unit).toBe("neurons")
      expect(plan.iterations).toBe(8)
      expect(plannedTuners(plan)).toMatchObject([{ kind: "sft", steps: 40 }])
      expect(plannedTuningSteps(plannedTuners(plan)[0].steps, plan.iterations)).toBe(320)
      expect(plan.gates.retries).toBe(2)
    }))

  it.effect("takes one tuning budget per iteration; iterations past the list use its last entry", () =>
    Effect.gen(function*() {
      const plan = yield* parsePlan(`${minimal}iterations: 3\ntuner: { steps: [10, 20, 40] }\n`, "plan.yaml")
      const steps = plannedTuners(plan)[0].steps
      expect([1, 2, 3, 4, 9].map((i) => tuningStepsAt(steps, i))).toEqual([10, 20, 40, 40, 40])
      expect(plannedTuningSteps(steps, plan.iterations)).toBe(70)
      // A list shorter than the iterations repeats its last entry in the planned budget too.
      const short = yield* parsePlan(`${minimal}iterations: 4\ntuner: { steps: [10, 20] }\n`, "plan.yaml")
      expect(plannedTuningSteps(plannedTuners(short)[0].steps, short.iterations)).toBe(70)
    }))

  it.effect("takes a list of tuners, run in order within every iteration", () =>
    Effect.gen(function*() {
      const plan = yield* parsePlan(`${minimal}tuner: [{ kind: cpt, steps: 5, maxSeqLen: 64 }, { steps: 3, lr: 0.0001 }]\n`, "plan.yaml")
      expect(plannedTuners(plan).map((t) => [t.kind, t.steps, t.lr])).toEqual([["cpt", 5, 1e-3], ["sft", 3, 1e-4]])
      // Evaluation and calibration use the longest sequence any tuner trains on.
      expect(planSeqLen(plan)).toBe(128)
    }))

  it.effect("reports every schema violation at once, each with its line and path", () =>
    Effect.gen(function*() {
      const problems = yield* problemsOf(`model: base
target: { parameters: 1.5 }
unit: atoms
iterations: 0
data:
  tune: []
  calibration: [{ task: arith }]
  evaluate: [{ task: nope }]
tuner: { steps: [10, 0], lr: -1 }
gates: { accuracyRetained: 2, onFailure: maybe }
`)
      const located = (line: number, path: string) => problems.some((p) => p.startsWith(`line ${line}: ${path}:`))
      expect(located(2, "target.parameters")).toBe(true)
      expect(located(3, "unit")).toBe(true)
      expect(located(4, "iterations")).toBe(true)
      expect(located(6, "data.tune[0]")).toBe(true)
      expect(located(8, "data.evaluate[0]")).toBe(true)
      expect(located(9, "tuner.steps[1]")).toBe(true)
      expect(located(9, "tuner.lr")).toBe(true)
      expect(located(10, "gates.accuracyRetained")).toBe(true)
      expect(located(10, "gates.onFailure")).toBe(true)
    }))

  it.effect("reports YAML syntax errors and duplicate keys with their lines, not a schema error", () =>
    Effect.gen(function*() {
      const problems = yield* problemsOf("model: base\nmodel: other\ntarget: [\n")
      expect(problems.some((p) => p.startsWith("line 2:") && p.includes("unique"))).toBe(true)
      expect(problems.every((p) => /^line \d+: /.test(p))).toBe(true)
    }))

  it.effect("rejects a document that is not a mapping, and an empty one", () =>
    Effect.gen(function*() {
      expect((yield* problemsOf("- 1\n- 2\n")).length).toBe(1)
      expect(yield* problemsOf("just words")).toEqual(["the plan must be a mapping of keys (model:, target:, data:, ...)"])
      expect(yield* problemsOf("")).toEqual(["the plan must be a mapping of keys (model:, target:, data:, ...)"])
    }))

  it.effect("rejects a scorer that cannot score the unit, on the scorer's line", () =>
    Effect.gen(function*() {
      const problems = yield* problemsOf(`${minimal}unit: [neurons, layers]\nscorer: wanda\n`)
      expect(problems).toEqual([`line 8: scorer: "wanda" cannot score layers; choose one of block-influence, skip-loss, random`])
    }))

  it.effect("the shipped plans are valid (`simmer plan --example` prints the demo's)", () =>
    Effect.gen(function*() {
      const demo = yield* readPlan(fileURLToPath(new URL("../../plans/demo.yaml", import.meta.url)))
      expect(plannedTuningSteps(plannedTuners(demo.plan)[0].steps, demo.plan.iterations)).toBe(300)
      yield* readPlan(fileURLToPath(new URL("../../plans/demo-quick.yaml", import.meta.url)))
    }))

  it.effect("names the file when it cannot be read", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(readPlan("/nonexistent/plan.yaml"))
      expect(error.message).toContain("Cannot read the plan /nonexistent/plan.yaml")
    }))
})
