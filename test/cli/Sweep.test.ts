/**
 * `simmer sweep` against a single daemon (a real `simmer serve` process): every combination runs,
 * one comparison page is written; a malformed sweep file is refused before anything is
 * submitted, with its lines.
 */
import { describe, expect, it } from "@effect/vitest"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { simmer } from "../helpers/cli.ts"
import { call, tinyPlan, writeTinyRunInputs } from "../helpers/daemon.ts"
import { startDaemonProcess } from "../helpers/daemonProcess.ts"

describe("simmer sweep", () => {
  it("runs every combination on a single daemon and writes one comparison; refuses a malformed sweep with lines", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "simmer-sweep-"))
    const daemon = await startDaemonProcess(join(tmp, "data"), [tmp])
    try {
      await Effect.runPromise(writeTinyRunInputs(tmp))
      const base = tinyPlan("model", { iterations: 1, steps: 1 }).replace("scorer: activation\n", "")
      // Every problem at once: the sweep's own, and the plan's beside them.
      writeFileSync(join(tmp, "bad.yaml"), `${base}sweep:\n  scorer: activation\n  depth: [1, 2]\n`.replace("iterations: 1", "iteratons: 1"))
      const refused = await simmer(["sweep", join(tmp, "bad.yaml"), "--server", daemon.url])
      expect(refused.status).toBe(1)
      expect(refused.stderr).toContain(`simmer: ${join(tmp, "bad.yaml")} is not a valid sweep (3 problems):`)
      expect(refused.stderr).toContain('line 4: iteratons: unknown key "iteratons"; did you mean iterations?')
      expect(refused.stderr).toContain("line 14: sweep.scorer: must be a non-empty list of values (e.g. scorer: [a, b])")
      expect(refused.stderr).toContain("line 15: sweep.depth: cannot be swept; a sweep varies scorer, target, schedule, tuner, seed")
      expect((await Effect.runPromise(call(`${daemon.url}/v1/runs`))).body.total).toBe(0)

      writeFileSync(join(tmp, "pair.yaml"), `${base}sweep:\n  scorer: [activation, random]\n`)
      const ran = await simmer(["sweep", join(tmp, "pair.yaml"), "--server", daemon.url, "--poll", "0.3", "--output", join(tmp, "pair.html")])
      expect(ran.status, ran.stderr).toBe(0)
      expect(ran.stdout).toMatch(/finished  scorer=activation\n/)
      expect(ran.stdout).toMatch(/finished  scorer=random\n/)
      expect(ran.stdout).toContain(`comparison: ${join(tmp, "pair.html")}`)
      expect(existsSync(join(tmp, "pair.html"))).toBe(true)
      const list = (await Effect.runPromise(call(`${daemon.url}/v1/runs`))).body
      expect(list.runs.map((r: { name: string }) => r.name).sort()).toEqual(["pair 1/2: scorer=activation", "pair 2/2: scorer=random"])
      // The comparison names the runs by their swept values, not by their ids.
      const page = readFileSync(join(tmp, "pair.html"), "utf8")
      expect(page).toContain("<title>simmer report — scorer=activation, scorer=random</title>")
      expect(ran.stdout).not.toContain(`${list.runs[0].id}:`)
    } finally {
      daemon.child.kill("SIGTERM")
      await daemon.exited
      rmSync(tmp, { recursive: true, force: true })
    }
  }, 120_000)
})
