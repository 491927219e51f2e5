/**
 * The webgpu backend as a user meets it, on whatever Vulkan driver the machine has (lavapipe
 * in CI: .ci/install-lavapipe). These tests fail, never skip, when no adapter is found.
 * - `simmer inspect --backend webgpu` names the adapter and its limits; `auto` passes over a
 *   software adapter.
 * - A run on webgpu, stopped by SIGTERM while it tunes and resumed, makes the same decisions with
 *   the same metrics as an uninterrupted webgpu run and as the same plan on cpu (webgpu is not
 *   bit-deterministic under load, so bytes are not compared; cpu and wasm resume byte-exactly).
 * - The daemon on webgpu reports its adapter in /readyz and finishes a run in its own process.
 * - A kernel the GPU rejects (a tensor past the binding limit) fails the read, never returns zeros.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as tf from "@tensorflow/tfjs"
import { Effect, Exit } from "effect"
import { readFloats } from "../../src/model/Read.ts"
import { useBackend } from "../helpers/backend.ts"
import { writeTinyCheckpoint } from "../helpers/checkpoint.ts"
import { root, simmer } from "../helpers/cli.ts"
import { call, submit, tinyPlan, waitForStatus } from "../helpers/daemon.ts"
import { loggedEvents, startDaemonProcess, waitUntil } from "../helpers/daemonProcess.ts"
import { tempDir } from "../io/_support.ts"

const plan = (backend: string) => tinyPlan("model", { steps: 6, iterations: 2, batchSize: 4 }).replace("backend: cpu", `backend: ${backend}`)

const finalWeights = (dir: string) => readFileSync(join(dir, "stages", "ptl-002", "model.safetensors"))

/** Each logged decision with its metrics and tuning losses, without times. */
const decisions = (dir: string) =>
  loggedEvents(dir).filter((e) => e.phase !== "interrupted").map((e) => ({
    iteration: e.iteration,
    phase: e.phase,
    parameters: e.parameters,
    metrics: e.metrics,
    losses: e.tune?.losses
  }))

describe("the webgpu backend", () => {
  it("inspect names the adapter and its limits; auto passes over a software adapter", async () => {
    const inspected = await simmer(["inspect", "models/base", "--backend", "webgpu", "--json"])
    expect(inspected.status, inspected.stderr).toBe(0)
    const { compute } = JSON.parse(inspected.stdout)
    expect(compute.backend).toBe("webgpu")
    expect(compute.adapter.description).not.toBe("")
    expect(compute.adapter.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20)
    const auto = await simmer(["inspect", "models/base", "--backend", "auto", "--json"])
    expect(JSON.parse(auto.stdout).compute.backend).toBe(compute.adapter.software ? "wasm" : "webgpu")
  })

  it.live("a run stopped by SIGTERM and resumed makes the decisions of one that ran through, and of cpu", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyCheckpoint(join(tmp, "model"))
      writeFileSync(join(tmp, "webgpu.yaml"), plan("webgpu"))
      writeFileSync(join(tmp, "cpu.yaml"), plan("cpu"))
      const [through, onCpu] = yield* Effect.promise(() =>
        Promise.all([
          simmer(["run", join(tmp, "webgpu.yaml"), "--out", join(tmp, "through"), "--workers", "1"]),
          simmer(["run", join(tmp, "cpu.yaml"), "--out", join(tmp, "cpu"), "--workers", "1"])
        ])
      )
      expect(through.status, through.stderr).toBe(0)
      expect(onCpu.status, onCpu.stderr).toBe(0)
      expect(JSON.parse(readFileSync(join(tmp, "through", "run.json"), "utf8")).backend).toMatch(/^webgpu \(/)

      const dir = join(tmp, "stopped")
      const first = spawn(process.execPath, [join(root, "bin/simmer.js"), "run", join(tmp, "webgpu.yaml"), "--out", dir, "--workers", "1"], {
        cwd: root,
        stdio: ["ignore", "ignore", "ignore"]
      })
      const firstExit = new Promise<number | null>((resolve) => first.on("close", resolve))
      // Stopped while the first iteration tunes: the step under way finishes, its GPU work drains, the state is saved.
      yield* Effect.promise(() => waitUntil(() => loggedEvents(dir).some((e) => e.phase === "pruned"), "the run to prune"))
      first.kill("SIGTERM")
      expect(yield* Effect.promise(() => firstExit)).toBe(75)
      expect(loggedEvents(dir).at(-1).phase).toBe("interrupted")
      const resumed = yield* Effect.promise(() => simmer(["resume", dir, "--workers", "1"]))
      expect(resumed.status, resumed.stderr).toBe(0)

      // webgpu is not bit-deterministic here: the resumed run usually ends with the same bytes as
      // the one that ran through, but not always under load (see README, Compute backends). What
      // holds against it, and against cpu: the same accepts and metrics, losses within float noise.
      expect(finalWeights(dir).length).toBe(finalWeights(join(tmp, "through")).length)
      const ranThrough = decisions(join(tmp, "through"))
      for (const other of [decisions(dir), decisions(join(tmp, "cpu"))]) {
        expect(other.map(({ losses: _, ...rest }) => rest)).toEqual(ranThrough.map(({ losses: _, ...rest }) => rest))
        ranThrough.forEach((e, i) => e.losses?.forEach((loss: number, j: number) => expect(Math.abs(loss - other[i].losses[j])).toBeLessThan(1e-3 * Math.max(1, loss))))
      }
    }), 300_000)

  it.live("the daemon on webgpu reports its adapter and finishes a run in its own process", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyCheckpoint(join(tmp, "model"))
      const daemon = yield* Effect.promise(() => startDaemonProcess(join(tmp, "data"), [tmp], ["--backend", "webgpu"]))
      yield* Effect.addFinalizer(() => Effect.sync(() => daemon.child.kill("SIGKILL")))
      const ready = (yield* call(`${daemon.url}/readyz`)).body
      expect(ready.backend).toMatch(/^webgpu \(/)
      expect(ready.adapter.description).not.toBe("")
      const submitted = yield* submit(daemon, plan("auto").replace("model: model", `model: ${join(tmp, "model")}`))
      expect(submitted.status, JSON.stringify(submitted.body)).toBe(201)
      const done = yield* waitForStatus(daemon, submitted.body.id, ["finished", "failed"])
      expect(done.status, JSON.stringify(done)).toBe("finished")
      const runDir = join(tmp, "data", "runs", submitted.body.id)
      expect(existsSync(join(runDir, "stages", "ptl-002"))).toBe(true)
      expect(JSON.parse(readFileSync(join(runDir, "run.json"), "utf8")).backend).toMatch(/^webgpu \(/)
    }), 300_000)

  it.live("a plan with a tensor past the binding limit is refused before any work, naming the tensor", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      yield* writeTinyCheckpoint(join(tmp, "model"))
      // 600 × 1024 tokens × the tasks' vocabulary of logits: more than WebGPU's default binding of
      // 128 MiB. SFT splits its head into vocabulary chunks; distillation does not yet.
      writeFileSync(join(tmp, "plan.yaml"), plan("webgpu").replace("tuner: { steps: 6, batchSize: 4", "tuner: { kind: distill, steps: 6, batchSize: 600").replace("maxSeqLen: 48", "maxSeqLen: 1024"))
      const refused = yield* Effect.promise(() => simmer(["run", join(tmp, "plan.yaml"), "--out", join(tmp, "run")]))
      const binding = JSON.parse((yield* Effect.promise(() => simmer(["inspect", "models/base", "--backend", "webgpu", "--json"]))).stdout).compute.adapter
        .maxStorageBufferBindingSize
      if (binding < 600 * 1024 * 58 * 4) {
        expect(refused.status).not.toBe(0)
        expect(refused.stderr).toContain("the logits of a distill batch (600 sequences × 1024 tokens")
        expect(existsSync(join(tmp, "run"))).toBe(false)
      }
    }), 120_000)

  it.live("a kernel the GPU rejects fails the read with the GPU's words", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() => useBackend("webgpu"))
      const binding = (tf.backend() as unknown as { device: GPUDevice }).device.limits.maxStorageBufferBindingSize
      // One row more than the binding limit holds: every kernel that binds it is rejected.
      const rows = Math.floor(binding / 4 / 1024) + 1
      const exit = yield* Effect.exit(readFloats(tf.tidy(() => tf.sum(tf.fill([rows, 1024], 1))), true))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain("maximum storage buffer binding size")
      // The next read is clean again.
      expect(yield* readFloats(tf.tidy(() => tf.sum(tf.ones([4]))), true)).toEqual(Float32Array.of(4))
      yield* Effect.promise(() => useBackend("cpu"))
    }))
})
