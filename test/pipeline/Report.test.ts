/**
 * report.html from synthetic event logs: tables, one <svg> per plot, nothing external, escaped
 * names, and the awkward logs (one event, NaN losses, no metrics, missing stages). writeReport:
 * a run folder and a compared one. (Reading events.ndjson is test/io/EventLog.test.ts.)
 *
 * SIMMER_REPORT_PREVIEW=/tmp/report.html also writes the synthetic report there, to look at.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { comparabilityWarnings } from "../../src/report/Comparable.ts"
import { renderReport } from "../../src/report/ReportPage.ts"
import { writeReport } from "../../src/report/WriteReport.ts"
import type { Phase, RunEvent, Strategy } from "../../src/io/RunEvent.ts"
import { RunEvent as RunEventSchema } from "../../src/io/RunEvent.ts"

// -------------------------------------------------------------------------------------------
// A generator of plausible run logs

const rng = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

interface Synthetic {
  readonly strategy: Strategy
  readonly iterations: number
  readonly seed?: number
  /** Graded datasets (accuracy) and perplexity datasets. */
  readonly graded?: ReadonlyArray<string>
  readonly text?: ReadonlyArray<string>
  readonly stepsPerIteration?: number
  /** Iterations whose first try is rolled back (and retried with half the step). */
  readonly rollbackAt?: ReadonlyArray<number>
  /** Replace these loss positions (within every tuning run) by NaN / Infinity. */
  readonly badLosses?: ReadonlyArray<number>
  readonly startSeq?: number
  /** Log iteration 0 (the loaded and evaluated original). */
  readonly withOriginal?: boolean
}

const originalTotal = 1_204_224
const embedding = 204_224

/** Events a run of `strategy` would log: load, then per iteration score → prune → tune → evaluate → accept/roll back. */
const synthetic = (spec: Synthetic): Array<RunEvent> => {
  const random = rng(spec.seed ?? 7)
  const graded = spec.graded ?? ["arith", "program"]
  const text = spec.text ?? ["general"]
  const steps = spec.stepsPerIteration ?? 40
  const events: Array<RunEvent> = []
  let seq = spec.startSeq ?? 0
  let clock = Date.parse("2026-11-02T09:00:00Z")
  let nonEmbedding = originalTotal - embedding
  const params = () => ({ total: nonEmbedding + embedding, nonEmbedding })
  const metrics = (quality: number) =>
    Object.fromEntries([
      ...graded.map((d, i) => [d, { accuracy: Math.max(0, Math.min(1, quality - 0.05 * i + (random() - 0.5) * 0.03)), examples: 200 }]),
      ...text.map((d) => [d, { perplexity: 3 + (1 - quality) * 6 + random() * 0.1, examples: 200 }])
    ])
  const emit = (iteration: number, attempt: number, phase: Phase, extra: Partial<RunEvent> = {}) => {
    clock += 1000 + Math.round(random() * 4000)
    events.push({
      seq: seq++,
      time: new Date(clock).toISOString(),
      strategy: spec.strategy,
      iteration,
      attempt,
      phase,
      parameters: params(),
      ...extra
    })
  }
  let quality = 0.86
  if (spec.withOriginal ?? true) {
    emit(0, 0, "loaded", { checkpoint: "stages/0" })
    emit(0, 0, "evaluated", { metrics: metrics(quality), timings: { evaluate: 6.2 } })
  }
  const perIteration = spec.strategy === "ptl" ? Math.round((originalTotal - embedding) * 0.05) : Math.round((originalTotal - embedding) * 0.05 * 8)
  for (let iteration = 1; iteration <= spec.iterations; iteration++) {
    const tries = spec.rollbackAt?.includes(iteration) ? 2 : 1
    for (let attempt = 0; attempt < tries; attempt++) {
      const before = nonEmbedding
      const cut = Math.round(perIteration / 2 ** attempt)
      const timings: Record<string, number> = { score: 1.5 + random() }
      nonEmbedding -= cut
      timings.prune = 0.3 + random() * 0.2
      emit(iteration, attempt, "pruned", { timings: { ...timings }, pruned: { unit: "neurons", removed: Math.round(cut / 3072), detail: "per layer, 8 layers" } })
      const dip = spec.strategy === "ptl" ? 0.08 : 0.45
      let tuneSteps = 0
      if (spec.strategy !== "prune-only") {
        tuneSteps = spec.strategy === "one-shot" ? steps * spec.iterations : steps
        const losses = Array.from({ length: tuneSteps }, (_, k) => 1.1 + dip * 4 * Math.exp(-k / (tuneSteps / 4)) + (random() - 0.5) * 0.12)
        for (const k of spec.badLosses ?? []) if (k < losses.length) losses[k] = k % 2 === 0 ? Number.NaN : Number.POSITIVE_INFINITY
        timings.tune = tuneSteps * (0.4 + random() * 0.1)
        emit(iteration, attempt, "tuned", { timings: { ...timings }, tune: { steps: tuneSteps, tokens: tuneSteps * 32 * 128, losses } })
      }
      const rolledBack = attempt === 0 && tries === 2
      const q = rolledBack ? quality - 0.2 : quality - (spec.strategy === "ptl" ? 0.01 : spec.strategy === "one-shot" ? 0.18 : 0.5)
      timings.evaluate = 6 + random()
      emit(iteration, attempt, "evaluated", { timings: { ...timings }, metrics: metrics(q) })
      if (rolledBack) {
        nonEmbedding = before
        emit(iteration, attempt, "rolled-back", { message: `gate failed: ${graded[0] ?? "accuracy"} kept ${(q / quality * 100).toFixed(0)}% of the original (< 90%)` })
      } else {
        quality = q
        timings.checkpoint = 0.8 + random() * 0.3
        emit(iteration, attempt, "accepted", { timings: { ...timings }, checkpoint: `stages/${iteration}` })
      }
    }
  }
  emit(spec.iterations, 0, "finished", { message: "target reached" })
  return events
}

// -------------------------------------------------------------------------------------------
// Checks on the HTML

const occurrences = (html: string, text: string) => html.split(text).length - 1

/** No attribute of the page holds NaN/Infinity/undefined (a broken coordinate or class). */
const assertClean = (html: string) => {
  assert.notMatch(html, /="[^"]*(NaN|Infinity|undefined)[^"]*"/)
  assert.notInclude(html, "http")
  assert.notInclude(html, "src=")
  assert.notInclude(html, "<link")
  assert.notInclude(html, "<script")
  assert.notInclude(html, "url(")
  assert.match(html, /^<!DOCTYPE html>/)
  assert.include(html, "</html>")
  assert.strictEqual(occurrences(html, "<svg"), occurrences(html, "</svg>"))
}

const demoEvents = (): Array<RunEvent> => {
  const ptl = synthetic({ strategy: "ptl", iterations: 8, rollbackAt: [5], graded: ["arith", "program"], text: ["general"] })
  const oneShot = synthetic({ strategy: "one-shot", iterations: 1, seed: 3, startSeq: ptl.length, stepsPerIteration: 320 })
  return [...ptl, ...oneShot]
}

describe("renderReport", () => {
  it("renders the header, a table row per attempt and an <svg> per plot, with nothing external", () => {
    const events = demoEvents()
    const plan = "model: models/base\ntarget:\n  parameters: 0.6\niterations: 8\n"
    const html = renderReport([{ name: "demo", events, plan }])
    assertClean(html)
    assert.include(html, "simmer report: models/base")
    // PTL: original + 8 iterations + one retry; one-shot: original + 1 iteration.
    assert.strictEqual(occurrences(html, "<tr class=\""), 10 + 2)
    assert.strictEqual(occurrences(html, "<tr class=\"rolled-back\">"), 1)
    assert.include(html, "gate failed: arith kept")
    for (const column of ["arith accuracy", "program accuracy", "general perplexity", "tune (s)", "checkpoint (s)", "Non-embedding"]) {
      assert.include(html, column)
    }
    // Plots: accuracy × 2 datasets, perplexity × 1, loss × 2 strategies, time × 2 strategies.
    assert.strictEqual(occurrences(html, "<svg"), 7)
    assert.include(html, "ptl: tuning loss")
    assert.include(html, "one-shot: time per stage")
    assert.include(html, "<pre>model: models/base")
    if (process.env.SIMMER_REPORT_PREVIEW !== undefined) {
      return writeFile(process.env.SIMMER_REPORT_PREVIEW, html)
    }
  })

  it("names simmer's version, the backend, when it ran and where each strategy's final checkpoint is", () => {
    const events = demoEvents()
    const info = { modelPath: "/models/base", createdAt: "2026-11-02T09:00:00Z", simmerVersion: "9.8.7", backend: "wasm (SIMD)" }
    const html = renderReport([{ name: "demo", events, folder: "/runs/demo", info }], {
      generated: { time: "2026-11-03T10:00:00Z", version: "9.9.9" }
    })
    assertClean(html)
    assert.include(html, "simmer 9.8.7, backend wasm (SIMD)")
    assert.include(html, "2026-11-02 09:00 UTC to ")
    assert.include(html, "written 2026-11-03 10:00 UTC by simmer 9.9.9")
    // ptl accepted 8 iterations; one-shot its one: their final stages, as paths a user can open.
    assert.include(html, "<td class=\"path\">/runs/demo/stages/8</td>")
    assert.include(html, "<td class=\"path\">/runs/demo/stages/1</td>")
    const unknown = renderReport([{ name: "old", events }])
    assert.include(unknown, "simmer version not recorded, backend not recorded")
  })

  it("escapes dataset names, messages, run names and plans", () => {
    const evil = "<script>alert(1)</script>.jsonl"
    const events = synthetic({ strategy: "ptl", iterations: 2, rollbackAt: [1], graded: [evil], text: [] })
      .map((e) => e.message !== undefined ? { ...e, message: `${e.message} <img onerror=alert(2)>` } : e)
    const html = renderReport([{ name: "run \"<b>\"", events, plan: "model: <script>x</script>\n" }])
    assertClean(html)
    assert.notInclude(html, "<img")
    assert.notInclude(html, "<b>\"")
    assert.include(html, "&lt;script&gt;alert(1)&lt;/script&gt;.jsonl")
    assert.include(html, "&lt;img onerror=alert(2)&gt;")
  })

  it("handles a log of one event: no graded metrics, no tuning, no timings", () => {
    const [loaded] = synthetic({ strategy: "ptl", iterations: 0 })
    const html = renderReport([{ name: "fresh", events: [loaded] }])
    assertClean(html)
    assert.include(html, "no graded metrics")
    assert.include(html, "no tuning steps logged")
    assert.include(html, "no stage timings logged")
    assert.strictEqual(occurrences(html, "<tr class=\"original\">"), 1)
    assert.strictEqual(occurrences(html, "<svg"), 3)
  })

  it("handles an empty log", () => {
    const html = renderReport([{ name: "empty", events: [] }])
    assertClean(html)
    assert.include(html, "No events yet")
  })

  it("handles NaN and infinite losses and metrics: gaps and marks, never NaN coordinates", () => {
    const events = synthetic({ strategy: "ptl", iterations: 3, badLosses: [0, 5, 6, 39], stepsPerIteration: 40 }).map((e) =>
      e.iteration === 2 && e.metrics !== undefined
        ? { ...e, metrics: { ...e.metrics, arith: { accuracy: Number.NaN, examples: 200 } } }
        : e
    )
    const html = renderReport([{ name: "nan", events }])
    assertClean(html)
    assert.include(html, "12 non-finite losses")
    assert.include(html, "loss NaN or infinite")
    // The NaN accuracy shows in the table as text.
    assert.include(html, ">NaN</td>")
  })

  it("handles every loss being NaN and a single accepted point", () => {
    const events = synthetic({ strategy: "one-shot", iterations: 1, withOriginal: false, stepsPerIteration: 3, badLosses: [0, 1, 2] })
    const html = renderReport([{ name: "lonely", events }])
    assertClean(html)
    assert.include(html, "every logged loss is NaN or infinite")
    // One accepted state: one marker (a circle, the first series' shape) in the accuracy plot.
    assert.include(html, "one-shot, iteration 1:")
  })

  it("handles missing stages and in-progress or interrupted attempts", () => {
    const events = synthetic({ strategy: "ptl", iterations: 2 })
      .filter((e) => e.phase !== "finished")
      .map((e) => e.timings !== undefined ? { ...e, timings: Object.fromEntries(Object.entries(e.timings).filter(([k]) => k !== "score")) } : e)
    const last = events[events.length - 1]
    const more: Array<RunEvent> = [
      { ...last, seq: last.seq + 1, iteration: 3, phase: "pruned", timings: { prune: 0.4, quantize: 2 } },
      { ...last, seq: last.seq + 2, iteration: 3, phase: "interrupted", message: "SIGTERM: saved stages/3.partial" },
      { ...last, seq: last.seq + 3, iteration: 4, phase: "pruned", timings: { score: Number.POSITIVE_INFINITY } }
    ]
    const html = renderReport([{ name: "partial", events: [...events, ...more] }])
    assertClean(html)
    assert.include(html, "quantize (s)")
    assert.include(html, "interrupted")
    assert.include(html, "in progress")
    // Stages in canonical order, unknown ones after; the infinite time is text in the table, no bar.
    assert.include(html, "score (s)</th><th scope=\"col\">prune (s)</th><th scope=\"col\">tune (s)")
    assert.include(html, "checkpoint (s)</th><th scope=\"col\">quantize (s)")
    assert.include(html, ">Infinity</td>")
  })

  it("draws compared runs as separate series with their own original", () => {
    const a = synthetic({ strategy: "ptl", iterations: 3 })
    const b = [...synthetic({ strategy: "ptl", iterations: 2, seed: 9 }), ...synthetic({ strategy: "prune-only", iterations: 1, seed: 4, startSeq: 100 })]
    const html = renderReport([{ name: "run", events: a }, { name: "run", events: b }])
    assertClean(html)
    for (const label of ["run · ptl", "run (2) · ptl", "run (2) · prune-only"]) assert.include(html, label)
  })
})

// -------------------------------------------------------------------------------------------
// Files

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "simmer-report-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const encode = Schema.encodeSync(Schema.toCodecJson(RunEventSchema))
const ndjson = (events: ReadonlyArray<RunEvent>) => events.map((e) => `${JSON.stringify(encode(e))}\n`).join("")

describe("comparabilityWarnings", () => {
  it("says when compared runs were evaluated on other datasets, example counts or evaluation data", () => {
    const a = { name: "a", events: synthetic({ strategy: "ptl", iterations: 2 }), plan: "data:\n  evaluate: [{ task: arith, seed: 1 }]\n" }
    assert.deepStrictEqual(comparabilityWarnings([a, { ...a, name: "b" }]), [])
    assert.deepStrictEqual(comparabilityWarnings([a]), [])
    const fewer = {
      name: "b",
      events: a.events.map((e) => e.metrics === undefined ? e : { ...e, metrics: Object.fromEntries(Object.entries(e.metrics).map(([k, m]) => [k, { ...m, examples: 32 }])) }),
      plan: "data:\n  evaluate: [{ seed: 2, task: arith }]\n  evaluationExamples: 32\n"
    }
    assert.deepStrictEqual(comparabilityWarnings([a, fewer]), [
      "the runs were evaluated on different datasets or numbers of examples (a: arith ×200, general ×200, program ×200; " +
      "b: arith ×32, general ×32, program ×32), so their accuracies are not directly comparable",
      "the plans name different evaluation data (a: {\"evaluate\":[{\"seed\":1,\"task\":\"arith\"}]}; " +
      "b: {\"evaluate\":[{\"seed\":2,\"task\":\"arith\"}],\"examples\":32})"
    ])
  })
})

describe("writeReport", () => {
  it.effect("writes <run>/report.html from the run and the compared runs, leaving no temporary file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const run = join(dir, "demo")
      const other = join(dir, "older")
      yield* Effect.promise(async () => {
        await mkdir(run)
        await mkdir(other)
        await writeFile(join(run, "events.ndjson"), ndjson(demoEvents()))
        await writeFile(join(run, "plan.yaml"), "model: models/base\n")
        await writeFile(join(other, "events.ndjson"), ndjson(synthetic({ strategy: "ptl", iterations: 2, seed: 11 })))
        await writeFile(join(run, "report.html"), "stale")
      })
      const path = yield* writeReport(run, [other])
      assert.strictEqual(path, join(run, "report.html"))
      const html = yield* Effect.promise(() => readFile(path, "utf8"))
      assertClean(html)
      for (const label of ["demo · ptl", "demo · one-shot", "older · ptl", "models/base"]) assert.include(html, label)
      assert.deepStrictEqual((yield* Effect.promise(() => readdir(run))).sort(), ["events.ndjson", "plan.yaml", "report.html"])
    }))

  it.effect("fails with a ReportError for a folder that is not a run", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const missing = yield* Effect.flip(writeReport(join(dir, "absent")))
      assert.strictEqual(missing._tag, "ReportError")
      assert.include(missing.message, "does not exist")
      const noEvents = yield* Effect.flip(writeReport(dir))
      assert.include(noEvents.message, "events.ndjson")
      assert.deepStrictEqual(yield* Effect.promise(() => readdir(dir)), [])
    }))
})
