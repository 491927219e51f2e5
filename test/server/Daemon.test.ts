/**
 * `simmer serve` as a process a machine stops: SIGTERM while a run tunes (exit 75, and the next
 * start finishes the run by itself, to the same bytes as an uninterrupted `simmer run`), and
 * kill -9 at several instants, a checkpoint write among them (on restart nothing submitted is
 * lost or run twice, the store opens, every run completes). SIGSTOP holds the daemon still at
 * the chosen instant, so the outcome does not depend on the machine's speed.
 */
import { describe, expect, it } from "@effect/vitest"
import { existsSync, readFileSync, watch, writeFileSync } from "node:fs"
import { createServer, type AddressInfo } from "node:net"
import { join } from "node:path"
import { Effect } from "effect"
import { createRunFolder } from "../../src/io/RunFolder.ts"
import { simmer } from "../helpers/cli.ts"
import { call, submit, tinyPlan, waitForStatus, writeTinyRunInputs } from "../helpers/daemon.ts"
import { loggedEvents, startDaemonProcess, waitUntil } from "../helpers/daemonProcess.ts"
import { tempDir } from "../io/_support.ts"

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

describe("simmer serve as a process", () => {
  it.live("SIGTERM while tuning: exit 75; the next start finishes the run, byte-identical to an uninterrupted run", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const plan = tinyPlan("model", { iterations: 2, steps: 12 })
      writeFileSync(join(tmp, "plan.yaml"), plan)
      // The uninterrupted reference, side by side with the daemon.
      const reference = simmer(["run", join(tmp, "plan.yaml"), "--out", join(tmp, "reference"), "--workers", "1"])

      const data = join(tmp, "data")
      const first = yield* promise(() => startDaemonProcess(data, [tmp]))
      const id = (yield* submit(first, plan, `?folder=${encodeURIComponent(tmp)}`)).body.id as string
      const dir = join(data, "runs", id)
      yield* promise(() => waitUntil(() => loggedEvents(dir).some((e) => e.phase === "pruned" && e.iteration === 1), "tuning to start"))
      first.child.kill("SIGSTOP")
      const stopping = performance.now()
      first.child.kill("SIGTERM")
      first.child.kill("SIGCONT")
      expect(yield* promise(() => first.exited)).toBe(75)
      const stopSeconds = (performance.now() - stopping) / 1000
      const stopped = loggedEvents(dir).at(-1)
      expect(stopped).toMatchObject({ phase: "interrupted", iteration: 1 })
      expect(stopped.message).toMatch(/interrupted in iteration 1 at sft step \d+ of 12/)
      expect(existsSync(join(dir, "resume", "state.json"))).toBe(true)
      expect(first.log()).toContain("stopped (exit 75)")

      const restarting = performance.now()
      const second = yield* promise(() => startDaemonProcess(data, [tmp]))
      const finished = yield* waitForStatus(second, id, ["finished", "failed"])
      const resumeSeconds = (performance.now() - restarting) / 1000
      expect(finished.status).toBe("finished")
      expect(second.log()).toContain(`run ${id} was interrupted: queued to continue first`)
      const events = loggedEvents(dir)
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i))
      expect(events.filter((e) => e.phase === "finished")).toHaveLength(1)

      const ran = yield* promise(() => reference)
      expect(ran.status, ran.stderr).toBe(0)
      const daemonWeights = readFileSync(join(dir, "stages", "ptl-002", "model.safetensors"))
      const referenceWeights = readFileSync(join(tmp, "reference", "stages", "ptl-002", "model.safetensors"))
      expect(daemonWeights.equals(referenceWeights)).toBe(true)

      second.child.kill("SIGTERM")
      expect(yield* promise(() => second.exited)).toBe(75)
      // The closing note of issue 11 quotes these.
      console.log(JSON.stringify({ preemption: { stopSeconds, resumeToFinishSeconds: resumeSeconds } }))
    }), 300_000)

  it.live("kill -9 while tuning, during a checkpoint write and after an accept: no run lost or run twice, the store consistent", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyRunInputs(tmp)
      const data = join(tmp, "data")
      const plan = tinyPlan("model", { iterations: 2, steps: 8 })
      let daemon = yield* promise(() => startDaemonProcess(data, [tmp]))
      const folder = `?folder=${encodeURIComponent(tmp)}`
      const a = (yield* submit(daemon, plan, `${folder}&name=a`)).body.id as string
      const b = (yield* submit(daemon, plan, `${folder}&name=b`)).body.id as string
      const dirA = join(data, "runs", a)

      const killWhen = async (condition: () => boolean, what: string) => {
        await waitUntil(condition, what)
        daemon.child.kill("SIGKILL")
        expect(await daemon.exited).toBe("SIGKILL")
      }
      // 1. While run a tunes its first iteration.
      yield* promise(() => killWhen(() => loggedEvents(dirA).some((e) => e.phase === "pruned" && e.iteration === 1), "a to tune"))

      // 2. The moment a stage folder is being written (its hidden temporary sibling appears).
      daemon = yield* promise(() => startDaemonProcess(data, [tmp]))
      let caughtWriting = false
      const watcher = watch(join(dirA, "stages"), (_, name) => {
        if (name !== null && name.includes(".partial-") && !caughtWriting) {
          caughtWriting = true
          daemon.child.kill("SIGKILL")
        }
      })
      yield* promise(() => daemon.exited)
      watcher.close()
      expect(caughtWriting).toBe(true)

      // A folder whose row was never written (a crash right after the folder): adopted on start.
      const c = "20990101-000000-00000c"
      yield* createRunFolder(join(data, "runs", c), plan, { modelPath: join(tmp, "model"), createdAt: new Date().toISOString(), planFolder: tmp })

      // 3. Right after run a accepts an iteration.
      daemon = yield* promise(() => startDaemonProcess(data, [tmp]))
      const acceptedBefore = loggedEvents(dirA).filter((e) => e.phase === "accepted").length
      yield* promise(() => killWhen(() => loggedEvents(dirA).filter((e) => e.phase === "accepted").length > acceptedBefore, "a to accept"))

      daemon = yield* promise(() => startDaemonProcess(data, [tmp]))
      for (const id of [a, b, c]) expect((yield* waitForStatus(daemon, id, ["finished", "failed"])).status, id).toBe("finished")
      const list = (yield* call(`${daemon.url}/v1/runs`)).body
      expect(list.runs.map((r: { id: string }) => r.id).sort()).toEqual([a, b, c].sort())
      for (const id of [a, b, c]) {
        const events = loggedEvents(join(data, "runs", id))
        expect(events.map((e) => e.seq), id).toEqual(events.map((_, i) => i))
        expect(events.filter((e) => e.phase === "finished"), id).toHaveLength(1)
        expect(events.filter((e) => e.phase === "accepted" && e.iteration === 2), id).toHaveLength(1)
        const result = JSON.parse(readFileSync(join(data, "runs", id, "result.json"), "utf8"))
        expect(result.strategies.ptl.checkpoint).toBe("stages/ptl-002")
      }
      daemon.child.kill("SIGTERM")
      expect(yield* promise(() => daemon.exited)).toBe(75)
    }), 300_000)

  it.live("a second daemon on the same data folder is refused, naming the first; after the first stops it starts", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const data = join(tmp, "data")
      const first = yield* promise(() => startDaemonProcess(data, [tmp]))
      const second = yield* promise(() => simmer(["serve", "--port", "0", "--data", data]))
      expect(second.status).toBe(1)
      expect(second.stderr).toContain(`is in use by another simmer serve (pid ${first.child.pid}`)
      first.child.kill("SIGTERM")
      yield* promise(() => first.exited)
      const third = yield* promise(() => startDaemonProcess(data, [tmp]))
      third.child.kill("SIGTERM")
      expect(yield* promise(() => third.exited)).toBe(75)
    }), 60_000)

  it.live("on a port in use: names the port and the process holding it, and creates nothing", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const holder = createServer()
      yield* promise(() => new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve)))
      const port = (holder.address() as AddressInfo).port
      const refused = yield* promise(() => simmer(["serve", "--port", String(port), "--data", join(tmp, "data")]))
      holder.close()
      expect(refused.status).toBe(1)
      expect(refused.stderr).toContain(`Port ${port} on 127.0.0.1 is in use by pid ${process.pid}`)
      expect(refused.stderr).toContain("--port")
      expect(existsSync(join(tmp, "data"))).toBe(false)
    }))

  it.live("refuses to listen beyond loopback without a token, saying how to give one", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const refused = yield* promise(() => simmer(["serve", "--host", "0.0.0.0", "--port", "0", "--data", join(tmp, "data")]))
      expect(refused.status).toBe(1)
      expect(refused.stderr).toContain("simmer serve --host 0.0.0.0 would accept runs from the network without a token")
      expect(refused.stderr).toContain("--token-file PATH")
    }))
})
