/**
 * The report of a run whose iterations tune with a list of tuners (distillation, then GRPO):
 * every tuning's losses are plotted, each tuner's own per-step measurements get a figure (the
 * learning rate does not), and the iteration table counts the steps and tokens of all tunings.
 */
import { describe, expect, it } from "@effect/vitest"
import type { RunEvent } from "../../src/io/RunEvent.ts"
import { renderReport } from "../../src/report/ReportPage.ts"

const parameters = { total: 1000, nonEmbedding: 900 }
let seq = 0
const event = (phase: RunEvent["phase"], iteration: number, extra: Partial<RunEvent> = {}): RunEvent => ({
  seq: seq++,
  time: new Date(Date.UTC(2026, 10, 2, 9, 0, seq)).toISOString(),
  strategy: "ptl",
  iteration,
  attempt: 0,
  phase,
  parameters,
  ...extra
})

const events: Array<RunEvent> = [
  event("loaded", 0),
  event("evaluated", 0, { metrics: { arith: { accuracy: 0.9, examples: 10 } } }),
  event("accepted", 0, { checkpoint: "stages/ptl-000" }),
  event("pruned", 1),
  event("tuned", 1, { tune: { kind: "distill", steps: 3, tokens: 300, losses: [0.5, 0.4, 0.3], metrics: { kl: [0.5, 0.4, 0.3], lr: [1, 2, 3] } } }),
  event("tuned", 1, {
    tune: {
      kind: "grpo",
      steps: 2,
      tokens: 77,
      losses: [0.01, -0.02],
      metrics: { reward: [0.25, 0.5], "reward.arith.correct": [0.2, 0.4], kl: [0, 0.01], clipFraction: [0, 0.1], lr: [1, 1] }
    }
  }),
  event("evaluated", 1, { metrics: { arith: { accuracy: 0.88, examples: 10 } } }),
  event("accepted", 1, { checkpoint: "stages/ptl-001" }),
  event("finished", 1)
]

describe("a report of a run with a tuner list", () => {
  it("plots every tuning's losses and each tuner's measurements, and counts all their steps", () => {
    const html = renderReport([{ name: "rl", events }])
    expect(html).toContain("5 steps in 2 tuning runs (distill, grpo)")
    expect(html).toContain("<h2>Tuning measurements</h2>")
    for (const name of ["reward", "reward.arith.correct", "kl", "clipFraction"]) expect(html).toContain(`ptl: ${name}</`)
    expect(html).not.toContain("ptl: lr</")
    // The loss and KL come from both tuners (one figure each, both tunings); the reward from GRPO alone.
    expect(html.split("5 steps in 2 tuning runs (distill, grpo); dashed lines start an iteration").length - 1).toBe(2)
    expect(html).toContain("2 steps in 1 tuning run; dashed lines start an iteration")
    // The iteration row counts 3 + 2 steps and 300 + 77 tokens.
    expect(html).toMatch(/<td class="num">5<\/td>\s*<td class="num">377<\/td>/)
  })
})
