/**
 * One memory budget: the DeviceMemory the CLI builds from --memory is also what every upload of
 * block-by-block work is checked against (its room), so a small --memory stops a chunked loss
 * or a block-by-block pass before it allocates, and a large one lets it run.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { beforeAll } from "vitest"
import { blockwiseLoss, lossBatch } from "../../src/model/Blockwise.ts"
import { chunkedNll } from "../../src/model/ChunkedLoss.ts"
import { disposeParams, initParams } from "../../src/model/Params.ts"
import { residentSource } from "../../src/model/WeightSource.ts"
import type { BackendName } from "../../src/compute/Backend.ts"
import { Compute } from "../../src/services/Compute.ts"
import { DeviceMemory, wasmHeapBudgetBytes } from "../../src/services/DeviceMemory.ts"
import { numTensors, tinyConfig, useBackend } from "../helpers/backend.ts"
import { unlimitedRoom } from "../helpers/room.ts"
import { randomBatches } from "../prune/_support.ts"

beforeAll(() => useBackend("cpu"))

const GIB = 2 ** 30
const config = tinyConfig({ vocabSize: 53 }, { numLayers: 2 })
const batches = randomBatches(53, { sequences: 6, batchSize: 3, minLen: 3, maxLen: 10, seed: 2 }).map(lossBatch)

/** The room of the DeviceMemory `simmer --memory <gib>` builds on `backend`. */
const roomOf = (gib: number, backend: BackendName = "cpu") =>
  Effect.runSync(Effect.map(DeviceMemory, (memory) => memory.room).pipe(
    Effect.provide(DeviceMemory.layer(gib).pipe(Layer.provide(Layer.succeed(Compute, Compute.of({ backend, description: backend })))))
  ))

describe("DeviceMemory's room", () => {
  it("is the --memory budget, and on wasm never above 90% of the 4 GiB heap", () => {
    expect(roomOf(2).budgetBytes).toBe(2 * GIB)
    expect(roomOf(100, "wasm").budgetBytes).toBe(wasmHeapBudgetBytes)
    expect(wasmHeapBudgetBytes).toBeLessThanOrEqual(0.9 * 4 * GIB)
  })

  it("a block-by-block pass fails with MemoryBudgetExceeded under a tiny --memory, and runs under a large one", async () => {
    const params = initParams(config, 7, 0.3)
    const before = numTensors()
    const tiny = roomOf(1e-6)
    const error = await Effect.runPromise(Effect.flip(blockwiseLoss(residentSource(config, params, tiny), batches)))
    expect(error._tag).toBe("MemoryBudgetExceeded")
    expect(error.budgetBytes).toBe(tiny.budgetBytes)
    expect(numTensors()).toBe(before)

    const roomy = await Effect.runPromise(blockwiseLoss(residentSource(config, params, roomOf(8)), batches))
    const reference = await Effect.runPromise(blockwiseLoss(residentSource(config, params, unlimitedRoom), batches))
    expect(roomy.weightedSums).toEqual(reference.weightedSums)
    expect(numTensors()).toBe(before)
    disposeParams(config, params)
  })

  it("a chunk of logits must fit the --memory budget beside what is allocated", async () => {
    const params = initParams(config, 8, 0.3)
    const rows = 12
    const final = tf.randomNormal([rows, config.hiddenSize]) as tf.Tensor2D
    const targets = Int32Array.from({ length: rows }, (_, i) => (i * 7) % config.vocabSize)
    // One chunk of the whole vocabulary needs its logits and head rows; leave room for half of that.
    const chunkBytes = 3 * rows * config.vocabSize * 4 + config.vocabSize * config.hiddenSize * 4
    const tight = roomOf((tf.memory().numBytes + chunkBytes / 2) / GIB)
    const error = await Effect.runPromise(Effect.flip(chunkedNll(residentSource(config, params, tight), final, targets, config.vocabSize)))
    expect(error._tag).toBe("MemoryBudgetExceeded")
    expect(error.what).toBe("a chunk of logits")
    // Smaller chunks fit the same budget.
    const small = await Effect.runPromise(chunkedNll(residentSource(config, params, tight), final, targets, 4))
    const whole = await Effect.runPromise(chunkedNll(residentSource(config, params, roomOf(8)), final, targets, config.vocabSize))
    small.forEach((v, i) => expect(Math.abs(v - whole[i])).toBeLessThan(1e-5))
    final.dispose()
    disposeParams(config, params)
  })
})
