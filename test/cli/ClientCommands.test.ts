/**
 * The daemon's command-line client as a user runs it (bin/simmer.js in child processes) against
 * a real daemon on loopback: submit --follow shows the run to its end and exits 0, runs / status
 * / watch show it, and mistakes (an unknown run, a run that cannot be resumed, no daemon at the
 * address, a wrong token) are one line each with exit 1. A daemon restart is waited out.
 */
import { describe, expect, it } from "@effect/vitest"
import { writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { Effect, Redacted } from "effect"
import { simmer, simmerProcess } from "../helpers/cli.ts"
import { bundledModelPath } from "../../src/pipeline/Plan.ts"
import { call, startDaemon, submit, tinyPlan, waitForStatus, writeTinyRunInputs } from "../helpers/daemon.ts"
import { loggedEvents, startDaemonProcess, waitUntil } from "../helpers/daemonProcess.ts"
import { unreachablePlan } from "../helpers/plans.ts"
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
      expect(runs.stdout).toMatch(new RegExp(`^${id}  finished    tiny — ptl reached its target: \\d+\\.\\d% of the parameters`))
      expect(JSON.parse(status.stdout)).toMatchObject({ id, status: "finished", folder: join(tmp, "data", "runs", id) })
      expect(watch.status).toBe(0)
      const watched = watch.stdout.trim().split("\n").map((l) => JSON.parse(l))
      expect(watched.map((e) => e.seq)).toEqual(watched.map((_, i) => i))
      expect(watched.at(-1).phase).toBe("finished")
      expect([unknown.status, unknown.stderr.trim()]).toEqual([1, "simmer: There is no run 20991231-235959-abcdef on this daemon (`simmer runs` lists them)."])
      // Resuming a finished run says so and exits 0, as the README promises.
      expect(notResumable.status, notResumable.stderr).toBe(0)
      expect(notResumable.stderr).toContain(`run ${id} already finished; there is nothing to resume`)
      expect(nobody.status).toBe(1)
      expect(nobody.stderr).toContain("Cannot reach the simmer daemon at http://127.0.0.1:9")
    }), 180_000)

  it.live("a run short of its target: submit --follow exits 3, and the API, runs and status show the loop's result, not the last baseline's; a failed run exits 4 and says why", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp, dirname(bundledModelPath)] })
      const server = ["--server", daemon.url]
      // (Cut to 25%: the daemon refuses a target its units cannot reach, which 5% is.)
      writeFileSync(join(tmp, "plan.yaml"), `${unreachablePlan("stop").replace("parameters: 0.05", "parameters: 0.25")}baselines: [prune-only]\n`)
      const submitted = yield* Effect.promise(() => simmer(["submit", join(tmp, "plan.yaml"), "--follow", "--name", "short", ...server]))
      expect(submitted.status, submitted.stderr).toBe(3)
      const id = submitted.stdout.trim().split("\n")[0]

      const detail = (yield* call(`${daemon.url}/v1/runs/${id}`)).body
      expect(detail.status).toBe("finished")
      expect(detail.progress.results.ptl).toMatchObject({ status: "finished", targetReached: false, share: 1, checkpoint: "stages/ptl-000" })
      expect(detail.progress.results.ptl.message).toContain("target not reached: stopped at 100.0%")
      expect(detail.progress.results.ptl.metrics.arith.accuracy).toBeGreaterThan(0.5)
      expect(detail.progress.results["prune-only"]).toMatchObject({ status: "finished", targetReached: true, checkpoint: "stages/prune-only-001" })

      const [runs, status] = yield* Effect.promise(() => Promise.all([simmer(["runs", ...server]), simmer(["status", id, ...server])]))
      expect(runs.stdout).toMatch(new RegExp(`^${id}  finished    short — ptl target not reached: 100\\.0% of the parameters, arith \\d+\\.\\d%; prune-only reached its target: \\d+\\.\\d% of the parameters`))
      expect(status.stdout).toContain(`ptl: final checkpoint ${join(tmp, "data", "runs", id, "stages", "ptl-000")} — target not reached: stopped at 100.0%`)

      // With onFailure: fail the run fails: exit 4 from --follow, and the API and runs say so, with the error.
      writeFileSync(join(tmp, "fail.yaml"), unreachablePlan("fail").replace("parameters: 0.05", "parameters: 0.25"))
      const failing = yield* Effect.promise(() => simmer(["submit", join(tmp, "fail.yaml"), "--follow", "--name", "failing", ...server]))
      expect(failing.status, failing.stderr).toBe(4)
      const failed = (yield* call(`${daemon.url}/v1/runs/${failing.stdout.trim().split("\n")[0]}`)).body
      expect(failed.status).toBe("failed")
      expect(failed.progress.results.ptl).toMatchObject({ status: "failed", targetReached: false, checkpoint: "stages/ptl-000" })
      expect(failed.progress.results.ptl.message).toContain("No pruning step passed the gates")
      const listed = yield* Effect.promise(() => simmer(["runs", "--status", "failed", ...server]))
      expect(listed.stdout).toContain(`${failing.stdout.trim().split("\n")[0]}  failed      failing — ptl iteration 1 failed`)
    }), 300_000)

  it.live("status shows metrics with the state they were measured on: during one-shot's tuning, the loop's accuracy is labelled as the loop's", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const daemon = yield* startDaemon({ dataDir: join(tmp, "data"), roots: [tmp] })
      const server = ["--server", daemon.url]
      const plan = `${tinyPlan("model", { steps: 300 })}baselines: [one-shot]\n`
      const id = (yield* submit(daemon, plan, `?folder=${encodeURIComponent(tmp)}`)).body.id as string
      // Stopped while one-shot tunes: its last state is one-shot's, its last evaluation the loop's.
      for (let i = 0; i < 1200; i++) {
        const progress = (yield* call(`${daemon.url}/v1/runs/${id}`)).body.progress
        if (progress?.strategy === "one-shot" && progress.tuning !== undefined) break
        yield* Effect.sleep("100 millis")
      }
      yield* call(`${daemon.url}/v1/runs/${id}/cancel`, { method: "POST" })
      const run = yield* waitForStatus(daemon, id, ["cancelled"])
      expect(run.progress).toMatchObject({ strategy: "one-shot", phase: "interrupted", measuredOn: { strategy: "ptl", iteration: 1 } })
      const status = yield* Effect.promise(() => simmer(["status", id, ...server]))
      expect(status.stdout).toMatch(
        new RegExp(`one-shot iteration 1 interrupted, \\d+\\.\\d% of the parameters \\(last evaluated: ptl iteration 1 at \\d+\\.\\d% of the parameters, program \\d+\\.\\d%\\)`)
      )
    }), 300_000)

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
      // Told once, by a status (queued, running) or by the run's next state, whichever comes first.
      expect(followed.stderr.match(new RegExp(`the daemon is back: run ${id} (is queued|is running|goes on)`, "g"))).toHaveLength(1)
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
