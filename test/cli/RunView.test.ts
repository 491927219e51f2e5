/**
 * The live status line `simmer run` redraws on a terminal: the metrics it shows are the last
 * evaluation's, labelled with the state they were measured on whenever that is not the state
 * shown (a new iteration's pruned or tuning model, another strategy).
 */
import { describe, expect, it } from "@effect/vitest"
import type { RunEvent } from "../../src/io/RunEvent.ts"
import { makeRunView } from "../../src/cli/RunView.ts"

const event = (seq: number, strategy: RunEvent["strategy"], iteration: number, phase: RunEvent["phase"], nonEmbedding: number, accuracy?: number): RunEvent => ({
  seq,
  time: "2026-01-01T00:00:00.000Z",
  strategy,
  iteration,
  attempt: 0,
  phase,
  parameters: { total: nonEmbedding + 100, nonEmbedding },
  ...(accuracy !== undefined ? { metrics: { arith: { accuracy, examples: 10 } } } : {})
})

/** The status line after each event, as a terminal would show it. */
const statusLines = (events: ReadonlyArray<RunEvent>) => {
  let screen = ""
  const stream = { write: (text: string) => ((screen += text), true) } as unknown as NodeJS.WriteStream
  const view = makeRunView("tty", 2, undefined, { out: stream, err: stream })
  return events.map((e) => {
    view.show({ _tag: "Event", event: e })
    return screen.slice(screen.lastIndexOf("\x1b[2K") + 4)
  })
}

describe("the live status line", () => {
  it("never shows an evaluation beside another state's size", () => {
    const lines = statusLines([
      event(0, "ptl", 0, "evaluated", 1000, 0.9),
      event(1, "ptl", 1, "pruned", 800),
      event(2, "ptl", 1, "evaluated", 800, 0.85),
      event(3, "ptl", 1, "finished", 800, 0.85),
      event(4, "one-shot", 1, "pruned", 800)
    ])
    expect(lines[1]).toBe("ptl iteration 1/2: pruned — 800 non-embedding parameters (80.0%) — last evaluated: ptl iteration 0/2 at 100.0%, arith 90.0%")
    expect(lines[2]).toBe("ptl iteration 1/2: evaluated — 800 non-embedding parameters (80.0%) — arith 85.0%")
    expect(lines[4]).toBe("one-shot iteration 1/1: pruned — 800 non-embedding parameters (80.0%) — last evaluated: ptl iteration 1/2 at 80.0%, arith 85.0%")
  })
})
