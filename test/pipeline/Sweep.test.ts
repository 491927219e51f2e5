import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { parsePlan } from "../../src/pipeline/Plan.ts"
import { parseSweep } from "../../src/pipeline/Sweep.ts"

const base = `model: base
target: { parameters: 0.6 }
iterations: 1
data:
  tune: [{ task: arith }]
  calibration: [{ task: arith }]
  evaluate: [{ task: arith }]
backend: cpu
`

const problemsOf = (text: string) =>
  parseSweep(text, "sweep.yaml", { relativeTo: "/" }).pipe(
    Effect.flip,
    Effect.map((e) => e.problems)
  )

describe("sweep files", () => {
  it.effect("expand to one plan per combination, in order, each a valid plan file without `sweep:`", () =>
    Effect.gen(function*() {
      const runs = yield* parseSweep(`${base}sweep:\n  scorer: [activation, wanda]\n  seed: [1, 2, 3]\n`, "sweep.yaml", { relativeTo: "/" })
      expect(runs.map((r) => r.label)).toEqual([
        "scorer=activation seed=1",
        "scorer=activation seed=2",
        "scorer=activation seed=3",
        "scorer=wanda seed=1",
        "scorer=wanda seed=2",
        "scorer=wanda seed=3"
      ])
      expect(runs[4].plan.scorer).toBe("wanda")
      expect(runs[4].plan.seed).toBe(2)
      expect(runs[4].text).not.toContain("sweep")
      const reparsed = yield* parsePlan(runs[4].text, "plan.yaml", { relativeTo: "/" })
      expect(reparsed.seed).toBe(2)
      expect(reparsed.scorer).toBe("wanda")
    }))

  it.effect("sweeps structured values (targets, tuners)", () =>
    Effect.gen(function*() {
      const text = base.replace("target: { parameters: 0.6 }\n", "") +
        "sweep:\n  target: [{ parameters: 0.6 }, { parameters: 0.5 }]\n  tuner: [{ steps: 2 }, { steps: 4, lr: 0.001 }]\n"
      const runs = yield* parseSweep(text, "sweep.yaml", { relativeTo: "/" })
      expect(runs).toHaveLength(4)
      expect(runs[3].plan.target).toEqual({ parameters: 0.5 })
      expect(runs[0].label).toBe('target={"parameters":0.6} tuner={"steps":2}')
    }))

  it.effect("refuse unknown and unsweepable keys, non-lists, empty lists and keys both set and swept, with lines", () =>
    Effect.gen(function*() {
      const problems = yield* problemsOf(`${base}sweep:\n  scorer: activation\n  colour: [red]\n  seed: []\n  target: [{ parameters: 0.5 }]\n`)
      expect(problems).toEqual([
        "line 10: sweep.scorer: must be a non-empty list of values (e.g. scorer: [a, b])",
        "line 11: sweep.colour: cannot be swept; a sweep varies scorer, target, schedule, tuner, seed",
        "line 12: sweep.seed: must be a non-empty list of values (e.g. seed: [a, b])",
        "line 2: target: also swept in sweep.target (line 13); set it in one place"
      ])
      // A near miss of a swept key is named.
      expect(yield* problemsOf(`${base}sweep:\n  seeds: [1, 2]\n`)).toEqual([
        "line 10: sweep.seeds: cannot be swept; did you mean seed? a sweep varies scorer, target, schedule, tuner, seed"
      ])
    }))

  it.effect("report a combination's plan problems at the line of the value that causes them", () =>
    Effect.gen(function*() {
      const problems = yield* problemsOf(`${base}colour: red\nsweep:\n  schedule: [constant, sideways]\n  seed: [1, 2]\n`)
      expect(problems).toHaveLength(2)
      expect(problems[0]).toMatch(/^line 9: colour: /)
      expect(problems[1]).toMatch(/^line 11: schedule: .* \(in schedule=sideways seed=1; schedule=sideways seed=2\)$/)
    }))

  it.effect("refuse a file without `sweep:` or with YAML errors", () =>
    Effect.gen(function*() {
      expect((yield* problemsOf(base))[0]).toMatch(/^sweep: missing: a sweep file is a plan plus `sweep:`/)
      expect((yield* problemsOf(`${base}sweep:\n  seed: [1, 2\n`))[0]).toMatch(/^line \d+: /)
      expect(yield* problemsOf(`${base}sweep: [1, 2]\n`)).toEqual(["line 9: sweep: must be a mapping of keys to lists of values (e.g. seed: [1, 2, 3])"])
    }))
})
