/**
 * Plan parsing: defaults, per-iteration tuning budgets, and malformed plans, whose every
 * problem is reported at once with its path and line; GRPO and distillation tuners with the
 * reward GRPO needs, each `tuner:` entry read as the kind it names (SFT when it names none);
 * `export:`, whose formats are checked like any other literal.
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

  it.effect("exports no stage unless asked; export: takes onnx and refuses other formats naming the valid one", () =>
    Effect.gen(function*() {
      expect((yield* parsePlan(minimal, "plan.yaml")).export).toEqual([])
      expect((yield* parsePlan(`${minimal}export: [onnx]\n`, "plan.yaml")).export).toEqual(["onnx"])
      const problems = yield* problemsOf(`${minimal}export: [onnx, gguf]\n`)
      expect(problems).toHaveLength(1)
      expect(problems[0]).toMatch(/^line 7: export\[1\]: .*onnx/)
      expect(problems[0]).toContain("gguf")
    }))

  it.effect("reports every schema violation at once, each with its line and path, in words", () =>
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
      expect(problems).toEqual([
        "line 2: target.parameters: expected a value less than or equal to 1, got 1.5",
        "line 3: unit: expected neurons, heads or layers, got \"atoms\"",
        "line 4: iterations: expected a value greater than 0, got 0",
        "line 6: data.tune: needs at least 1 entry",
        "line 8: data.evaluate[0].task: expected arith, program, sort, reverse, count, compare, lookup, units or general, got \"nope\"",
        "line 9: tuner.steps[1]: expected a value greater than 0, got 0",
        "line 9: tuner.lr: expected a value greater than 0, got -1",
        "line 10: gates.accuracyRetained: expected a value less than or equal to 1, got 2",
        "line 10: gates.onFailure: expected stop or fail, got \"maybe\""
      ])
    }))

  it.effect("rejects unknown keys anywhere, with the closest known key (a typo must not run with defaults)", () =>
    Effect.gen(function*() {
      const problems = yield* problemsOf(`${minimal}iteration: 4
tuner: { learning_rate: 0.001, batch_size: 8 }
gates: { retry: 1 }
`)
      expect(problems).toEqual([
        "line 7: iteration: unknown key \"iteration\"; did you mean iterations?",
        "line 8: tuner.learning_rate: unknown key \"learning_rate\"; the keys here are kind, steps, batchSize, lr, " +
        "warmupFraction, weightDecay, maxGradNorm, maxSeqLen, adapter",
        "line 8: tuner.batch_size: unknown key \"batch_size\"; did you mean batchSize?",
        "line 9: gates.retry: unknown key \"retry\"; did you mean retries?"
      ])
      const nested = yield* problemsOf(minimal.replace("tune: [{ task: arith }]", "tune: [{ task: arith, sed: 3 }, { fil: a.jsonl }]"))
      expect(nested).toEqual([
        "line 4: data.tune[0].sed: unknown key \"sed\"; did you mean seed?",
        "line 4: data.tune[1]: give either task (arith, program, sort, reverse, count, compare, lookup, units or general), file or hub; \"fil\" is not a key here (did you mean file?)"
      ])
    }))

  it.effect("says which keys choose a member of a union instead of the schema's own text", () =>
    Effect.gen(function*() {
      expect(yield* problemsOf(minimal.replace("target: { parameters: 0.5 }", "target: { parameter: 0.5 }"))).toEqual([
        "line 2: target: give either parameters or perLayer; \"parameter\" is not a key here (did you mean parameters?)"
      ])
      expect(yield* problemsOf(minimal.replace("target: { parameters: 0.5 }", "target: { parameters: 0.5, perLayer: { neurons: 8 } }")))
        .toEqual(["line 2: target: give either parameters or perLayer, not both"])
      expect(yield* problemsOf(minimal.replace("model: base\n", ""))).toEqual(["line 1: model: required, but missing"])
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
      expect(problems).toEqual([
        `line 8: scorer: "wanda" cannot score layers; choose one of block-influence, skip-loss, random, or name one per unit: scorer: { neurons: wanda, layers: block-influence }`
      ])
    }))

  it.effect("reports rules across keys together with every other problem", () =>
    Effect.gen(function*() {
      const problems = yield* problemsOf(`${minimal}iterations: -1\nunit: heads\nscorer: wanda\n`)
      expect(problems).toEqual([
        "line 7: iterations: expected a value greater than 0, got -1",
        "line 9: scorer: \"wanda\" cannot score heads; choose one of contribution, random"
      ])
      const perLayer = yield* problemsOf(minimal.replace("target: { parameters: 0.5 }", "target: { perLayer: { heads: 1 } }"))
      expect(perLayer).toEqual([
        "line 2: target.perLayer.heads: the plan does not prune heads (unit: neurons); add heads to unit, or remove it here",
        "line 2: target.perLayer: give how many neurons each layer keeps"
      ])
    }))

  it.effect("reads relative paths from the plan's folder (or the folder it is told)", () =>
    Effect.gen(function*() {
      const text = minimal.replace("model: base", "model: ../models/small").replace("tune: [{ task: arith }]", "tune: [{ file: train.jsonl }]")
      const plan = yield* parsePlan(text, "/work/plans/plan.yaml")
      expect(plan.model).toBe("/work/models/small")
      expect(plan.data.tune).toEqual([{ file: "/work/plans/train.jsonl" }])
      const moved = yield* parsePlan(text, "/runs/a/plan.yaml", { relativeTo: "/work/plans" })
      expect(moved.model).toBe("/work/models/small")
      expect((yield* parsePlan(minimal, "/work/plans/plan.yaml")).model).toBe("base")
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

describe("a plan's tuners and reward", () => {
  it.effect("decode each entry as the kind it names, with that kind's defaults", () =>
    Effect.gen(function*() {
      const plan = yield* parsePlan(
        `${minimal}tuner: [{ steps: 40 }, { kind: grpo, steps: 20, rollouts: 4 }, { kind: distill, temperature: 2, alpha: 0.5 }]
reward: [{ rule: arith, weight: 1 }, { rule: program, correct: 1, format: 0 }]
`,
        "plan.yaml"
      )
      const [sft, grpo, distill] = plannedTuners(plan)
      expect(sft).toMatchObject({ kind: "sft", steps: 40 })
      expect(grpo).toMatchObject({ kind: "grpo", steps: 20, rollouts: 4, prompts: 8, temperature: 1, clip: 0.2, klCoef: 0.01, ppoEpochs: 1 })
      expect(distill).toMatchObject({ kind: "distill", temperature: 2, alpha: 0.5, steps: 40 })
      expect(plan.reward).toEqual([
        { rule: "arith", weight: 1, correct: 0.9, format: 0.1 },
        { rule: "program", weight: 1, correct: 1, format: 0 }
      ])
    }))

  it.effect("refuse a grpo tuner without reward:, on the tuner's line", () =>
    Effect.gen(function*() {
      expect(yield* problemsOf(`${minimal}tuner: [{ kind: sft }, { kind: grpo }]\n`)).toEqual([
        "line 7: tuner[1]: a grpo tuner maximises the plan's reward: add reward:, e.g. reward: [{ rule: arith }] " +
        "(rules: arith, program, question-answer; or { model: path/to/reward-model })"
      ])
    }))

  it.effect("report problems of the kind the entry names, and unknown kinds and rules", () =>
    Effect.gen(function*() {
      const problems = yield* problemsOf(`${minimal}tuner: [{ kind: grpo, rollouts: 1, topP: 2, beta: 0.1 }, { kind: ppo }]
reward: [{ rule: chess }, { model: "" }]
`)
      expect(problems).toEqual([
        expect.stringMatching(/^line 7: tuner\[0\]\.beta: unknown key "beta"; the keys here are kind, steps, prompts, rollouts, .*klCoef/),
        "line 7: tuner[0].rollouts: expected a value greater than or equal to 2, got 1",
        "line 7: tuner[0].topP: expected a value less than or equal to 1, got 2",
        "line 7: tuner[1].kind: expected sft, cpt, grpo or distill, got \"ppo\"",
        "line 8: reward[0].rule: expected arith, program or question-answer, got \"chess\"",
        "line 8: reward[1].model: expected a value with a length of at least 1, got \"\""
      ])
    }))

  it.effect("read relative reward-model and teacher paths from the plan's folder", () =>
    Effect.gen(function*() {
      const plan = yield* parsePlan(
        `${minimal}tuner: [{ kind: distill, teacher: ../teacher }, { kind: grpo }]\nreward: [{ model: rm, weight: 0.5 }, { rule: arith }]\n`,
        "/work/plans/plan.yaml"
      )
      expect(plannedTuners(plan)[0]).toMatchObject({ kind: "distill", teacher: "/work/teacher" })
      expect(plan.reward?.[0]).toEqual({ model: "/work/plans/rm", weight: 0.5, batchSize: 16 })
      // A single tuner stays a single tuner.
      const single = yield* parsePlan(`${minimal}tuner: { kind: distill, teacher: t }\n`, "/p/plan.yaml")
      expect(single.tuner).toMatchObject({ kind: "distill", teacher: "/p/t" })
    }))
})
