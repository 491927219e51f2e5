import { assert, describe, it, layer } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { beforeAll } from "vitest"
import type { TokenBatch } from "../../src/model/Gradients.ts"
import { assembleParams, initParams, type Params, paramSpecs, paramTensors } from "../../src/model/Params.ts"
import { Gradients } from "../../src/services/Gradients.ts"
import { maxAbsDiff, tinyConfig, useBackend } from "../helpers/backend.ts"
import { Compute } from "../../src/services/Compute.ts"

const config = tinyConfig({}, { numHeads: 4, numKeyValueHeads: 2 })
let params: Params
beforeAll(async () => {
  await useBackend("cpu")
  params = initParams(config, 3, 0.3)
})

const batchOf = (rows: number, seqLen: number, weights?: (row: number, t: number) => number): TokenBatch => ({
  ids: Int32Array.from({ length: rows * seqLen }, (_, i) => (i * 7 + 3) % config.vocabSize),
  ...(weights === undefined ? {} : {
    weights: Float32Array.from({ length: rows * (seqLen - 1) }, (_, i) => weights(Math.floor(i / (seqLen - 1)), i % (seqLen - 1)))
  }),
  batchSize: rows,
  seqLen
})

const localLayer = Gradients.layerLocal.pipe(Layer.provide(Compute.layer("cpu")))

const localGradients = (p: Params, batch: TokenBatch) =>
  Effect.gen(function*() {
    const gradients = yield* Gradients
    return yield* gradients.lossAndGradients(config, p, batch)
  }).pipe(Effect.provide(localLayer))

const both = (batch: TokenBatch) =>
  Effect.gen(function*() {
    const gradients = yield* Gradients
    const local = yield* localGradients(params, batch)
    const parallel = yield* gradients.lossAndGradients(config, params, batch)
    const worst = Math.max(...local.grads.map((g, i) => maxAbsDiff(g.dataSync(), parallel.grads[i].dataSync())))
    const shapes = parallel.grads.map((g) => g.shape)
    const expectedShapes = paramTensors(config, params).map((t) => t.shape)
    tf.dispose([...local.grads, ...parallel.grads])
    return { local, parallel, worst, shapes, expectedShapes }
  })

layer(Gradients.layerDataParallel({ workers: 2 }).pipe(Layer.provide(Compute.layer("cpu"))), { timeout: 60_000 })(
  "data-parallel gradients (2 workers, cpu)",
  (it) => {
    it.effect("equal the local gradients for an even split", () =>
      Effect.gen(function*() {
        const gradients = yield* Gradients
        assert.strictEqual(gradients.parallelism, 2)
        const { local, parallel, worst, shapes, expectedShapes } = yield* both(batchOf(4, 9))
        assert.deepStrictEqual(shapes, expectedShapes)
        assert.strictEqual(parallel.targets, local.targets)
        assert.isBelow(Math.abs(parallel.loss - local.loss), 1e-6)
        assert.isBelow(worst, 1e-5)
      }))

    it.effect("weight shards by counted targets (uneven rows, masks, a shard with none)", () =>
      Effect.gen(function*() {
        // 3 rows → shards of 1 and 2 rows; the first row counts no target at all.
        const masked = batchOf(3, 7, (row, t) => (row === 0 ? 0 : t % 2 === 0 ? 1 : 0))
        const a = yield* both(masked)
        assert.strictEqual(a.parallel.targets, a.local.targets)
        assert.isBelow(Math.abs(a.parallel.loss - a.local.loss), 1e-6)
        assert.isBelow(a.worst, 1e-5)
        // Fractional weights with shard totals below one (nextTokenLoss divides by max(t, 1)).
        const fractional = batchOf(3, 5, (row, t) => (row + 1) * 0.05 * (t + 1))
        const b = yield* both(fractional)
        assert.isBelow(Math.abs(b.parallel.loss - b.local.loss), 1e-6)
        assert.isBelow(b.worst, 1e-5)
      }))

    it.effect("ships new parameters when they change (new tensors, or variables assigned in place)", () =>
      Effect.gen(function*() {
        const gradients = yield* Gradients
        const batch = batchOf(2, 6)
        const before = yield* gradients.lossAndGradients(config, params, batch)
        const scaled = initParams(config, 4, 0.3)
        const after = yield* gradients.lossAndGradients(config, scaled, batch)
        const local = yield* localGradients(scaled, batch)
        assert.notStrictEqual(before.loss, after.loss)
        assert.isBelow(Math.abs(after.loss - local.loss), 1e-6)
        tf.dispose([...before.grads, ...after.grads, ...local.grads, ...paramTensors(config, scaled)])
        // Variables assigned in place keep their tensor but get new data.
        const variables = paramTensors(config, params).map((t) => tf.variable(t))
        const specs = paramSpecs(config)
        const asParams = assembleParams(config, (name) => variables[specs.findIndex((spec) => spec.name === name)])
        const first = yield* gradients.lossAndGradients(config, asParams, batch)
        variables.forEach((v) => v.assign(tf.mul(v, 1.5)))
        const second = yield* gradients.lossAndGradients(config, asParams, batch)
        const expected = yield* localGradients(asParams, batch)
        assert.notStrictEqual(first.loss, second.loss)
        assert.isBelow(Math.abs(second.loss - expected.loss), 1e-6)
        tf.dispose([...first.grads, ...second.grads, ...expected.grads, ...variables])
      }))
  }
)

describe("data-parallel Gradients on wasm workers", () => {
  it.effect("equal the local cpu gradients (relative 1e-5: other kernels, other summation order)", () =>
    Effect.gen(function*() {
      const batch = batchOf(4, 9)
      const gradients = yield* Gradients
      const parallel = yield* gradients.lossAndGradients(config, params, batch)
      const local = yield* localGradients(params, batch)
      assert.isBelow(Math.abs(parallel.loss - local.loss), 1e-5)
      local.grads.forEach((g, i) => {
        const expected = g.dataSync()
        const scale = Math.max(1e-3, ...Array.from(expected, Math.abs))
        assert.isBelow(maxAbsDiff(parallel.grads[i].dataSync(), expected) / scale, 1e-5)
      })
      tf.dispose([...parallel.grads, ...local.grads])
    }).pipe(Effect.provide(Gradients.layerDataParallel({ workers: 2, backend: "wasm" }).pipe(Layer.provide(Compute.layer("cpu"))))))
})

describe("data-parallel Gradients as a scoped resource", () => {
  it.effect("terminates its workers when the scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        Gradients.layerDataParallel({ workers: 1 }).pipe(Layer.provide(Compute.layer("cpu"))),
        scope
      )
      const gradients = Context.get(context, Gradients)
      const batch = batchOf(1, 4)
      const first = yield* gradients.lossAndGradients(config, params, batch)
      tf.dispose(first.grads)
      yield* Scope.close(scope, Exit.void)
      const after = yield* Effect.exit(gradients.lossAndGradients(config, params, batch))
      assert.isTrue(Exit.isFailure(after))
      assert.include(String(after), "exited")
    }))

  it.effect("fails to build when a worker's backend cannot start", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Effect.gen(function*() {
          yield* Gradients
        }).pipe(Effect.provide(Gradients.layerDataParallel({ workers: 1, backend: "no-such-backend" }).pipe(Layer.provide(Compute.layer("cpu")))))
      )
      assert.isTrue(Exit.isFailure(exit))
    }))
})
