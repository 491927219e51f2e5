/**
 * `simmer report --compare` as a user meets it (issue 14.17, 14.15): the comparison goes to its
 * own page (or --output) instead of over the run's report.html, a summary is printed, a warning
 * says when the runs were evaluated differently, and a folder that is not a run gets one message
 * from report and resume alike.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { messages, simmer } from "../helpers/cli.ts"

const dir = mkdtempSync(join(tmpdir(), "simmer-report-cli-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A finished one-iteration run evaluated on `examples` arith examples. */
const writeRun = (name: string, examples: number, accuracy: number) => {
  const folder = join(dir, name)
  mkdirSync(folder)
  const size = (nonEmbedding: number) => ({ total: nonEmbedding + 1000, nonEmbedding })
  const metrics = (a: number) => ({ arith: { accuracy: a, examples } })
  const events = [
    { iteration: 0, phase: "loaded", parameters: size(8000) },
    { iteration: 0, phase: "evaluated", parameters: size(8000), metrics: metrics(0.9) },
    { iteration: 1, phase: "accepted", parameters: size(4000), metrics: metrics(accuracy), checkpoint: "stages/ptl-001" },
    { iteration: 1, phase: "finished", parameters: size(4000), metrics: metrics(accuracy), checkpoint: "stages/ptl-001" }
  ].map((e, seq) => JSON.stringify({ seq, time: `2026-11-02T09:0${seq}:00.000Z`, strategy: "ptl", attempt: 0, ...e }))
  writeFileSync(join(folder, "events.ndjson"), events.join("\n") + "\n")
  writeFileSync(join(folder, "plan.yaml"), "model: base\n")
  writeFileSync(join(folder, "run.json"), JSON.stringify({ modelPath: "/m", createdAt: "2026-11-02T09:00:00Z", simmerVersion: "0.1.0", backend: "cpu" }))
  writeFileSync(join(folder, "report.html"), "the run's own report")
  return folder
}

describe("simmer report", () => {
  it("writes a comparison to --output, summarises it, warns about different evaluations, keeps the run's report", async () => {
    const a = writeRun("a", 500, 0.85)
    const b = writeRun("b", 32, 0.75)
    const output = join(dir, "a-vs-b.html")
    const [compared, notARun, resumeNotARun] = await Promise.all([
      simmer(["report", a, "--compare", b, "--output", output]),
      simmer(["report", dir]),
      simmer(["resume", dir])
    ])
    expect(compared.status, compared.stderr).toBe(0)
    expect(compared.stdout.split("\n")).toEqual([
      `a · ptl: finished, 50.0% of the non-embedding parameters, arith 85.0%; final model ${join(a, "stages/ptl-001")}`,
      `b · ptl: finished, 50.0% of the non-embedding parameters, arith 75.0%; final model ${join(b, "stages/ptl-001")}`,
      `report: ${output}`,
      ""
    ])
    expect(messages(compared)).toEqual([
      "[warn] the runs were evaluated on different datasets or numbers of examples (a: arith ×500; b: arith ×32), so their " +
      "accuracies are not directly comparable."
    ])
    expect(readFileSync(join(a, "report.html"), "utf8")).toBe("the run's own report")
    const html = readFileSync(output, "utf8")
    expect(html).toContain("simmer 0.1.0, backend cpu")
    expect(html).toContain(`<td class="path">${join(b, "stages/ptl-001")}</td>`)
    // One run-opening path: report and resume say the same (resume said "Cannot read the plan …/plan.yaml: ENOENT").
    for (const result of [notARun, resumeNotARun]) {
      expect(result.status).toBe(1)
      expect(messages(result)).toEqual([
        `simmer: ${dir} is not a run folder: it has no plan.yaml, run.json, events.ndjson (\`simmer run\` and \`simmer demo\` create run folders).`
      ])
    }
  }, 60_000)
})
