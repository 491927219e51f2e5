/**
 * The daemon's command-line client as a user runs it (bin/simmer.js in child processes) against
 * a real daemon on loopback: submit --follow shows the run to its end and exits 0, runs / status
 * / watch show it, and mistakes (an unknown run, a run that cannot be resumed, no daemon at the
 * address, a wrong token) are one line each with exit 1. A daemon restart is waited out.
 */
import { describe, expect, it } from "@effect/vitest"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Redacted } from "effect"
import { simmer, simmerProcess } from "../helpers/cli.ts"
import { startDaemon, tinyPlan, writeTinyRunInputs } from "../helpers/daemon.ts"
import { loggedEvents, startDaemonProcess, waitUntil } from "../helpers/daemonProcess.ts"
import { tempDir } from "../io/_support.ts"

describe("simmer submit, runs, status, watch, cancel, resume", () => {
  it.live("follow a run to its end, show it, and say what is wrong in one line", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp] })
      const server = ["--server", daemon.url]

      // Relative paths in the plan are read from its own folder, on the daemon's side too.
      const submitted = yield* Effect.promise(() => simmer(["submit", join(tmp, "plan.yaml"), "--follow", "--name", "tiny", ...server], { cwd: "/" }))
      expect(submitted.status, submitted.stderr).toBe(0)
      const id = submitted.stdout.split("\n")[0]
      expect(id).toMatch(/^\d{8}-\d{6}-[0-9a-f]{6}$/)
      expect(submitted.stderr).toContain("ptl iteration 1/1: accepted")
      expect(submitted.stderr).toContain(`run ${id}: finished`)
      expect(submitted.stdout).toContain(`report: ${join(tmp, "data", "runs", id, "report.html")}`)

      const [runs, status, watch, unknown, notResumable, nobody] = yield* Effect.promise(() =>
        Promise.all([
          simmer(["runs", ...server]),
          simmer(["status", id, "--json", ...server]),
          simmer(["watch", id, "--json", ...server]),
          simmer(["cancel", "20991231-235959-abcdef", ...server]),
          simmer(["resume", id, ...server]),
          simmer(["runs", "--server", "http://127.0.0.1:9"])
        ])
      )
      expect(runs.stdout).toMatch(new RegExp(`^${id}  finished    tiny — ptl iteration 1 finished, \\d+\\.\\d% of the parameters`))
      expect(JSON.parse(status.stdout)).toMatchObject({ id, status: "finished", folder: join(tmp, "data", "runs", id) })
      expect(watch.status).toBe(0)
      const watched = watch.stdout.trim().split("\n").map((l) => JSON.parse(l))
      expect(watched.map((e) => e.seq)).toEqual(watched.map((_, i) => i))
      expect(watched.at(-1).phase).toBe("finished")
      expect([unknown.status, unknown.stderr.trim()]).toEqual([1, "simmer: There is no run 20991231-235959-abcdef on this daemon (`simmer runs` lists them)."])
      expect([notResumable.status, notResumable.stderr.trim()]).toEqual([
        1,
        `simmer: Run ${id} is finished; only a cancelled, interrupted or failed run can be resumed.`
      ])
      expect(nobody.status).toBe(1)
      expect(nobody.stderr).toContain("Cannot reach the simmer daemon at http://127.0.0.1:9")
    }), 180_000)

  it.live("submit --follow waits out a daemon restart and ends as `simmer run` does; Ctrl-C on watch leaves the run to the daemon", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      writeFileSync(join(tmp, "plan.yaml"), tinyPlan("model", { iterations: 2, steps: 12 }))
      const data = join(tmp, "data")
      const first = yield* Effect.promise(() => startDaemonProcess(data, [tmp]))
      const follow = simmerProcess(["submit", join(tmp, "plan.yaml"), "--follow", "--server", first.url])
      yield* Effect.promise(() => waitUntil(() => follow.stdout().includes("\n"), "the run's id"))
      const id = follow.stdout().split("\n")[0]
      const dir = join(data, "runs", id)

      // A second watcher, stopped with Ctrl-C once it follows the run: the run goes on.
      const quitter = simmerProcess(["watch", id, "--server", first.url])
      yield* Effect.promise(() => waitUntil(() => quitter.stderr().includes("loaded"), "the watcher to follow"))
      quitter.child.kill("SIGINT")
      const quit = yield* Effect.promise(() => quitter.result)
      expect(quit.stderr).toContain(`stopped watching; run ${id} goes on on the daemon`)

      // The daemon stops while the run tunes, and comes back on the same address.
      yield* Effect.promise(() => waitUntil(() => loggedEvents(dir).some((e) => e.phase === "pruned" && e.iteration === 1), "tuning to start"))
      first.child.kill("SIGSTOP")
      first.child.kill("SIGTERM")
      first.child.kill("SIGCONT")
      expect(yield* Effect.promise(() => first.exited)).toBe(75)
      const second = yield* Effect.promise(() => startDaemonProcess(data, [tmp], ["--port", new URL(first.url).port]))

      const followed = yield* Effect.promise(() => follow.result)
      second.child.kill("SIGTERM")
      expect(followed.status, followed.stderr).toBe(0)
      expect(followed.stderr).toMatch(/ptl iteration \d\/2: interrupted — .* stopped at a step boundary with its state saved/)
      expect(followed.stderr).not.toContain("simmer resume /")
      expect(followed.stderr).toContain(`the daemon is back: run ${id} is`)
      expect(followed.stderr.match(/ptl iteration 2\/2: accepted/g)).toHaveLength(1)
      expect(followed.stderr).toContain(`run ${id}: finished`)
      expect(followed.stdout).toContain(`ptl: `)
      expect(followed.stdout).toContain(`checkpoint ${join(dir, "stages", "ptl-002")}`)
      expect(followed.stdout).toContain(`report: ${join(dir, "report.html")}`)
      yield* Effect.promise(() => second.exited)
    }), 300_000)

  it.live("a mistyped run id is named as what it is not, without the schema's words", () =>
    Effect.gen(function*() {
      const cancel = yield* Effect.promise(() => simmer(["cancel", "nope", "--server", "http://127.0.0.1:9"]))
      expect(cancel.status).toBe(1)
      expect(cancel.stderr).toContain('Invalid value for argument <id>: "nope"')
      expect(cancel.stderr).toContain("a run id as `simmer submit` prints it")
      expect(cancel.stderr).not.toContain("Schema validation failed")
    }))

  it.live("sends the token from SIMMER_TOKEN or --token-file", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp], token: Redacted.make("letmein") })
      writeFileSync(join(tmp, "token"), "letmein\n")
      writeFileSync(join(tmp, "wrong"), "nope\n")
      const [withFile, fromEnv, wrong] = yield* Effect.promise(() =>
        Promise.all([
          simmer(["runs", "--server", daemon.url, "--token-file", join(tmp, "token")]),
          simmer(["runs"], { env: { SIMMER_SERVER: daemon.url, SIMMER_TOKEN: "letmein" } }),
          simmer(["runs", "--server", daemon.url, "--token-file", join(tmp, "wrong")])
        ])
      )
      expect([withFile.status, withFile.stderr.trim()]).toEqual([0, "no runs"])
      expect([fromEnv.status, fromEnv.stderr.trim()]).toEqual([0, "no runs"])
      expect([wrong.status, wrong.stderr.trim()]).toEqual([1, "simmer: The bearer token is not this daemon's."])
    }), 120_000)
})
