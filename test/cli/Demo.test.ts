/**
 * Smoke test of the main job: `simmer demo --quick` through the real CLI (launcher, layers,
 * bundled model) finishes, prints the comparison and writes the report. How long it takes is
 * the benchmarks' business, not a test's.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const root = join(import.meta.dirname, "../..")

describe("simmer demo --quick", () => {
  it("runs the loop and the one-shot baseline on the bundled model", () => {
    const dir = mkdtempSync(join(tmpdir(), "simmer-demo-"))
    try {
      const result = spawnSync(process.execPath, [join(root, "bin/simmer.js"), "demo", "--quick", "--json", "--out", join(dir, "run")], {
        encoding: "utf8",
        timeout: 600_000
      })
      expect(result.status, result.stderr).toBe(0)
      const lines = result.stdout.trim().split("\n")
      const { comparison, note } = JSON.parse(lines.at(-1)!) as { comparison: Array<{ strategy: string; share: number }>; note?: string }
      // Issue 14.16: a smoke test's table says it is one (32 examples, no gate), so nobody reads it as a result.
      expect(note).toMatch(/^note: --quick is a smoke test .* no accuracy gate, 32 test examples per task \(one example is 3\.1 points\)/)
      expect(comparison.map((r) => r.strategy)).toEqual(["original", "ptl", "one-shot"])
      for (const row of comparison.slice(1)) expect(row.share).toBeLessThanOrEqual(0.5)
      // The NDJSON events came first, one per line, and the report exists.
      expect(lines.slice(0, -1).every((line) => "phase" in JSON.parse(line))).toBe(true)
      const html = readFileSync(join(dir, "run", "report.html"), "utf8")
      expect(html).toContain("<svg")
      // Issue 14.17: the report names the simmer and backend that ran it and where the results are.
      expect(html).toMatch(/simmer \d+\.\d+\.\d+, backend (wasm|cpu|tensorflow)/)
      expect(html).toContain(`<td class="path">${join(dir, "run", "stages")}`)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 620_000)
})
