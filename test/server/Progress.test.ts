/**
 * A run's progress summary and tuning meter against hand-worked numbers: the share of
 * parameters left, tuning tokens summed over logged tunings, the accepted stage, and a
 * resumed tuning's rate counted from the first step seen (not from step 1).
 */
import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import type { RunEvent } from "../../src/io/RunEvent.ts"
import type { TuneProgress } from "../../src/pipeline/RunUpdate.ts"
import { makeTuningMeter, measuredHere, progressOfLog } from "../../src/server/Progress.ts"
import { LoggedProgress } from "../../src/services/JobStore.ts"

const event = (seq: number, phase: RunEvent["phase"], nonEmbedding: number, extra: Partial<RunEvent> = {}): RunEvent => ({
  seq,
  time: "2026-01-01T00:00:00.000Z",
  strategy: "ptl",
  iteration: seq < 3 ? 0 : 1,
  attempt: 0,
  phase,
  parameters: { total: nonEmbedding + 100, nonEmbedding },
  ...extra
})

const step = (step: number, seconds: number, tokens = 50): TuneProgress => ({
  strategy: "ptl",
  iteration: 1,
  attempt: 0,
  tuner: "sft",
  position: 0,
  step,
  steps: 20,
  loss: 1 / step,
  tokens,
  // Ten steps of 50 tokens before the resume, then these.
  tuningTokens: tokens * (step - 10) + 500,
  metrics: {},
  seconds
})

describe("progress", () => {
  it("summarises a log: share left, tuning tokens, last metrics, accepted stage", () => {
    const progress = progressOfLog([
      event(0, "loaded", 1000),
      event(1, "evaluated", 1000, { metrics: { arith: { accuracy: 0.9, examples: 10 } } }),
      event(2, "accepted", 1000, { checkpoint: "stages/ptl-000" }),
      event(3, "pruned", 750),
      event(4, "tuned", 750, { tune: { steps: 4, tokens: 320, losses: [1, 1, 1, 1] } }),
      event(5, "tuned", 750, { tune: { steps: 2, tokens: 80, losses: [1, 1] } }),
      event(6, "evaluated", 750, { metrics: { arith: { accuracy: 0.85, examples: 10 } } })
    ])
    expect(progress).toEqual({
      seq: 6,
      strategy: "ptl",
      iteration: 1,
      attempt: 0,
      phase: "evaluated",
      share: 0.75,
      metrics: { arith: { accuracy: 0.85, examples: 10 } },
      measuredOn: { strategy: "ptl", iteration: 1, attempt: 0, share: 0.75 },
      tuningTokens: 400,
      acceptedStage: "stages/ptl-000"
    })
    expect(progressOfLog([])).toBeUndefined()
    // While the next iteration tunes, the metrics are still iteration 1's, and say so.
    const tuning = progressOfLog([
      event(0, "loaded", 1000),
      event(1, "evaluated", 1000, { metrics: { arith: { accuracy: 0.9, examples: 10 } } }),
      event(3, "pruned", 750)
    ])!
    expect([tuning.measuredOn, measuredHere(tuning)]).toEqual([{ strategy: "ptl", iteration: 0, attempt: 0, share: 1 }, false])
  })

  it("measures a tuning resumed at step 11 from there: five steps in 2 s is 2.5 steps/s, and the 5 left take 2 s", () => {
    const meter = makeTuningMeter()
    expect(meter.current).toBeUndefined()
    for (const [n, seconds] of [[11, 0.5], [12, 0.9], [13, 1.2], [14, 1.6], [15, 2]] as const) meter.step(step(n, seconds))
    expect(meter.current).toEqual({ tuner: "sft", step: 15, steps: 20, loss: 1 / 15, stepsPerSecond: 2.5, tokensPerSecond: 125, etaSeconds: 2 })
    // The tuning's tokens count the ten steps before the resume too; the rate only those seen.
    expect(meter.tokens).toBe(750)
    meter.reset()
    expect([meter.current, meter.tokens]).toEqual([undefined, 0])
  })
})

describe("the stored progress summary", () => {
  const decode = Schema.decodeUnknownSync(Schema.fromJsonString(LoggedProgress))

  it("reads back as stored, its strategy and phase the run events' own", () => {
    const progress = progressOfLog([event(0, "loaded", 1000), event(1, "evaluated", 1000, { metrics: { arith: { accuracy: 0.5, examples: 8 } } })])!
    expect(decode(JSON.stringify(progress))).toEqual(progress)
  })

  it("refuses a strategy or phase no run event has", () => {
    const stored = JSON.stringify(progressOfLog([event(0, "loaded", 1000)]))
    expect(() => decode(stored.replace("\"loaded\"", "\"scored\""))).toThrow()
    expect(() => decode(stored.replace("\"ptl\"", "\"baseline\""))).toThrow()
  })
})
