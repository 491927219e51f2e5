/**
 * The run folder store against what disks and people do to it: a second writer, a lock left by
 * a killed process, damaged files (event log, accepted.json, run.json, resume state) named in
 * typed errors instead of read as empty, and a resume state that cannot be saved.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { hostname } from "node:os"
import { join } from "node:path"
import { Effect, Layer, Option, Stream } from "effect"
import { beforeAll } from "vitest"
import { readRunFile, RunResult } from "../../src/io/RunFolder.ts"
import { disposeModel } from "../../src/model/Model.ts"
import { parsePlan } from "../../src/pipeline/Plan.ts"
import { runUpdates } from "../../src/pipeline/Run.ts"
import { DeviceMemory, makeDeviceMemory } from "../../src/services/DeviceMemory.ts"
import { RunStore } from "../../src/services/RunStore.ts"
import { localGradients, planReward, useBackend } from "../helpers/backend.ts"
import { writeTinyCheckpoint } from "../helpers/checkpoint.ts"
import { tempDir } from "../io/_support.ts"
import { Datasets } from "../../src/services/Datasets.ts"

beforeAll(() => useBackend("cpu"))

const store = Effect.gen(function*() {
  return yield* RunStore
})

describe("the run folder store", () => {
  it.live("takes the folder for one writer: a second is refused naming the first; a dead writer's lock is taken over", () =>
    Effect.gen(function*() {
      const dir = join(yield* tempDir, "run")
      const second = yield* Effect.scoped(Effect.gen(function*() {
        yield* Layer.build(RunStore.layerFolder(dir))
        return yield* Effect.flip(Effect.scoped(Layer.build(RunStore.layerFolder(dir))))
      }))
      expect(second._tag).toBe("RunLocked")
      expect(second.message).toContain(`pid ${process.pid}`)
      // Released with its scope.
      yield* Effect.scoped(Layer.build(RunStore.layerFolder(dir)))
      // A lock written by a process that has exited (as after kill -9) is stale.
      const gone = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" })
      writeFileSync(join(dir, "lock"), JSON.stringify({ pid: Number(gone.stdout), host: hostname(), since: "then", command: "run" }))
      yield* Effect.scoped(Layer.build(RunStore.layerFolder(dir)))
    }))

  it.live("a damaged event log, accepted.json or result.json is a typed error naming the file", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const logged = join(tmp, "log")
      mkdirSync(logged)
      writeFileSync(join(logged, "events.ndjson"), "{\"seq\":0}\nnot json\n{}\n")
      const log = yield* Effect.flip(Effect.scoped(Layer.build(RunStore.layerFolder(logged))))
      expect(log._tag).toBe("InvalidEventLog")
      expect(log.message).toContain(join(logged, "events.ndjson"))

      const pointed = join(tmp, "pointer")
      mkdirSync(pointed)
      writeFileSync(join(pointed, "accepted.json"), "{\"ptl\": {\"stage\": 3}}")
      const pointer = yield* Effect.flip(Effect.flatMap(store, (s) => s.accepted).pipe(Effect.provide(RunStore.layerFolder(pointed))))
      expect(pointer._tag).toBe("CorruptRunFile")
      expect(pointer.message).toContain(join(pointed, "accepted.json"))

      writeFileSync(join(pointed, "result.json"), "{\"strategies\": [")
      const result = yield* Effect.flip(readRunFile(join(pointed, "result.json"), RunResult))
      expect(result._tag).toBe("CorruptRunFile")
    }))

  it.live("a resume state that does not say where it stood is named, with what to do", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const model = join(tmp, "model")
      yield* writeTinyCheckpoint(model)
      const plan = yield* parsePlan(`
model: ${model}
target: { parameters: 0.6 }
iterations: 2
scorer: activation
data: { tune: [{ task: arith }], calibration: [{ task: arith }], evaluate: [{ task: program }], calibrationExamples: 4, evaluationExamples: 2 }
tuner: { steps: 3, batchSize: 2, maxSeqLen: 32 }
backend: cpu`, "plan.yaml")
      const dir = join(tmp, "run")
      const layers = Layer.mergeAll(RunStore.layerFolder(dir), Datasets.layer, localGradients, Layer.effect(DeviceMemory, makeDeviceMemory("host memory", 2 ** 32)), planReward(plan))
      let steps = 0
      yield* Stream.runDrain(
        runUpdates({ plan, modelPath: model, stopRequested: Effect.sync(() => steps >= 1) }).pipe(
          Stream.tap((u) => Effect.sync(() => (u._tag === "Step" ? steps++ : 0)))
        )
      ).pipe(Effect.provide(layers))
      writeFileSync(join(dir, "resume", "state.json"), "{\"format\": \"something else\"}")
      const error = yield* Effect.flip(Stream.runDrain(runUpdates({ plan, modelPath: model })).pipe(Effect.provide(layers)))
      expect(error._tag).toBe("CorruptRunFile")
      expect(error.message).toContain(`remove ${dir}/resume to restart that iteration`)
      // The rest of the saved state is still there for a person to look at.
      const saved = yield* Effect.flatMap(store, (s) => s.loadResume).pipe(Effect.provide(RunStore.layerFolder(dir)))
      expect(Option.isSome(saved)).toBe(true)
      if (Option.isSome(saved)) disposeModel(saved.value.model)
    }), 60_000)
})
