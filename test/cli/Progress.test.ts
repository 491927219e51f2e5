/**
 * Progress lines (cli/Progress.ts): the ETA of work resumed part-way counts only the work this
 * process did (a train-base resumed at step 7,750 of 16,000 once claimed to be 12 s from the end
 * 11 s after it started).
 */
import { PassThrough } from "node:stream"
import { describe, expect, it } from "vitest"
import { makeProgress } from "../../src/cli/Progress.ts"

const lines = (from?: number) => {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream
  let text = ""
  ;(stream as unknown as PassThrough).on("data", (chunk) => (text += chunk))
  const progress = makeProgress("train", 100, { stream, plainEverySeconds: 0, ...(from !== undefined ? { from } : {}) })
  const started = performance.now()
  while (performance.now() - started < 50) {
    // 50 ms of work for one step
  }
  progress.update((from ?? 0) + 1)
  return text
}

const etaSeconds = (line: string) => {
  const [, clock] = line.match(/eta (\S+)/)!
  return clock.split(":").map(Number).reduce((a, b) => a * 60 + b)
}

describe("progress", () => {
  it("estimates the rest from the rate of this process's own work", () => {
    // One step in ~50 ms: the 49 (or 99) steps left take seconds, not less than one.
    expect(etaSeconds(lines(50))).toBeGreaterThanOrEqual(2)
    expect(etaSeconds(lines())).toBeGreaterThanOrEqual(4)
  })
})
