/**
 * Plans with GRPO and distillation tuners and a reward: each `tuner:` entry decodes as the kind
 * it names (SFT when it names none), a grpo tuner needs `reward:`, problems are reported for the
 * kind the entry meant, and relative reward-model and teacher paths are read from the plan's folder.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { parsePlan, plannedTuners } from "../../src/pipeline/Plan.ts"

const minimal = `model: base
target: { parameters: 0.5 }
data:
  tune: [{ task: arith }]
  calibration: [{ task: arith }]
  evaluate: [{ task: arith }]
`

const problemsOf = (text: string) =>
  parsePlan(text, "/plans/plan.yaml").pipe(Effect.flip, Effect.map((e) => e.problems))

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
