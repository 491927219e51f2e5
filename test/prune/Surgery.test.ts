import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import type { ModelConfig } from "../../src/model/ModelConfig.ts"
import { countParams, disposeParams, initParams, type Params, paramTensors } from "../../src/model/Params.ts"
import { IllegalPrune } from "../../src/prune/Errors.ts"
import { applyPlan, type KeepPlan, removeKvGroups, removeLayers, removeNeurons } from "../../src/prune/Surgery.ts"
import { maxAbsDiff, tinyConfig, useBackend } from "../helpers/backend.ts"
import { deadBlock, deadGroup, logitsOf, silentNeurons } from "./_support.ts"

beforeAll(() => useBackend("cpu"))

const all = (n: number) => Array.from({ length: n }, (_, i) => i)
const except = (n: number, drop: ReadonlyArray<number>) => all(n).filter((i) => !drop.includes(i))
const run = Effect.runSync

/** Both Llama (untied, no biases) and Qwen2 (tied, q/k/v biases) plus Llama with every bias. */
const configs: Array<[string, ModelConfig]> = [
  ["llama", tinyConfig({}, { numLayers: 3 })],
  ["qwen2", tinyConfig({ architecture: "qwen2", tieWordEmbeddings: true, qkvBias: true }, { numLayers: 3 })],
  ["llama with biases", tinyConfig({ qkvBias: true, outputBias: true, mlpBias: true }, { numLayers: 3, numHeads: 4, numKeyValueHeads: 4 })]
]

describe.each(configs)("surgery on %s", (_name, config) => {
  it("removing neurons whose down_proj columns are zero leaves the logits unchanged", () => {
    const params = silentNeurons(silentNeurons(initParams(config, 1, 0.3), 0, [3, 7, 20]), 2, [0, 23])
    const before = logitsOf(config, params)
    const pruned = run(removeNeurons(config, params, [except(24, [3, 7, 20]), all(24), except(24, [0, 23])]))
    expect(pruned.config.layers.map((l) => l.intermediateSize)).toEqual([21, 24, 22])
    expect(maxAbsDiff(logitsOf(pruned.config, pruned.params), before)).toBeLessThan(1e-5)
    disposeParams(pruned.config, pruned.params)
  })

  it("removing any other single neuron changes the logits", () => {
    const params = silentNeurons(initParams(config, 2, 0.3), 1, [5])
    const before = logitsOf(config, params)
    for (let j = 0; j < 24; j++) {
      const keep = [all(24), except(24, [j]), all(24)]
      const pruned = run(removeNeurons(config, params, keep, { keepOriginal: true }))
      const diff = maxAbsDiff(logitsOf(pruned.config, pruned.params), before)
      if (j === 5) expect(diff).toBeLessThan(1e-5)
      else expect(diff).toBeGreaterThan(1e-5)
      disposeParams(pruned.config, pruned.params)
    }
    disposeParams(config, params)
  })

  it("removing a block whose output projections are zero leaves the logits unchanged; any other block changes them", () => {
    const params = deadBlock(initParams(config, 3, 0.3), 1)
    const before = logitsOf(config, params)
    for (const drop of [0, 2]) {
      const other = run(removeLayers(config, params, except(3, [drop]), { keepOriginal: true }))
      expect(maxAbsDiff(logitsOf(other.config, other.params), before)).toBeGreaterThan(1e-4)
      disposeParams(other.config, other.params)
    }
    const pruned = run(removeLayers(config, params, [0, 2]))
    expect(pruned.config.layers).toHaveLength(2)
    expect(maxAbsDiff(logitsOf(pruned.config, pruned.params), before)).toBeLessThan(1e-6)
    disposeParams(pruned.config, pruned.params)
  })

  it("removing a key/value group whose o_proj rows are zero leaves the logits unchanged and keeps the GQA ratio", () => {
    const KV = config.layers[0].numKeyValueHeads
    const H = config.layers[0].numHeads
    const params = deadGroup(config, initParams(config, 4, 0.3), 0, 1)
    const before = logitsOf(config, params)
    const other = run(removeKvGroups(config, params, [except(KV, [0]), all(KV), all(KV)], { keepOriginal: true }))
    expect(maxAbsDiff(logitsOf(other.config, other.params), before)).toBeGreaterThan(1e-4)
    disposeParams(other.config, other.params)
    const pruned = run(removeKvGroups(config, params, [except(KV, [1]), all(KV), all(KV)]))
    expect(pruned.config.layers[0]).toEqual({ intermediateSize: 24, numHeads: H - H / KV, numKeyValueHeads: KV - 1 })
    expect(pruned.config.hiddenSize).toBe(config.hiddenSize)
    expect(pruned.config.headDim).toBe(config.headDim)
    expect(maxAbsDiff(logitsOf(pruned.config, pruned.params), before)).toBeLessThan(1e-5)
    disposeParams(pruned.config, pruned.params)
  })

  it("the parameter count after surgery equals the formula for the new shapes", () => {
    const plans: Array<KeepPlan> = [
      { unit: "neurons", keep: [all(10), all(24), [1, 2, 3]] },
      { unit: "heads", keep: [[0], all(config.layers[0].numKeyValueHeads), [1]] },
      { unit: "layers", keep: [2] }
    ]
    for (const plan of plans) {
      const params = initParams(config, 5)
      const pruned = run(applyPlan(config, params, plan))
      const actual = paramTensors(pruned.config, pruned.params).reduce((n, t) => n + t.size, 0)
      expect(actual).toBe(countParams(pruned.config).total)
      // The formula by hand: per layer attention D·(H+2KV)·hd + H·hd·D (+ biases), MLP 3·D·I (+ biases), two norms.
      const D = config.hiddenSize
      const hd = config.headDim
      const layers = pruned.config.layers.reduce((n, l) =>
        n + D * (l.numHeads + 2 * l.numKeyValueHeads) * hd + l.numHeads * hd * D +
        (config.qkvBias ? (l.numHeads + 2 * l.numKeyValueHeads) * hd : 0) + (config.outputBias ? D : 0) +
        3 * D * l.intermediateSize + (config.mlpBias ? 2 * l.intermediateSize + D : 0) + 2 * D, 0)
      const expected = layers + config.vocabSize * D * (config.tieWordEmbeddings ? 1 : 2) + D
      expect(actual).toBe(expected)
      disposeParams(pruned.config, pruned.params)
    }
  })
})

describe("illegal requests", () => {
  const config = tinyConfig({}, { numLayers: 2 })

  const illegal: Array<[string, KeepPlan]> = [
    ["a layer without neurons", { unit: "neurons", keep: [all(24), []] }],
    ["a neuron index out of range", { unit: "neurons", keep: [all(24), [0, 24]] }],
    ["a repeated neuron", { unit: "neurons", keep: [[1, 1, 2], all(24)] }],
    ["a plan for the wrong number of layers", { unit: "neurons", keep: [all(24)] }],
    ["a layer without key/value groups", { unit: "heads", keep: [[], [0]] }],
    ["a fractional group index", { unit: "heads", keep: [[0.5], [0]] }],
    ["no layers at all", { unit: "layers", keep: [] }],
    ["a layer that does not exist", { unit: "layers", keep: [0, 2] }]
  ]

  it.each(illegal)("%s fails with IllegalPrune and leaves the model untouched", (_name, plan) => {
    const params = initParams(config, 6, 0.3)
    const before = logitsOf(config, params)
    const tensors = tf.memory().numTensors
    const failure = Effect.runSync(Effect.flip(applyPlan(config, params, plan)))
    expect(failure).toBeInstanceOf(IllegalPrune)
    expect(failure._tag).toBe("IllegalPrune")
    expect(failure.unit).toBe(plan.unit)
    expect(failure.message).toMatch(/^Cannot prune .*The model was left unchanged\.$/)
    expect(tf.memory().numTensors).toBe(tensors)
    expect(paramTensors(config, params).every((t) => !t.isDisposed)).toBe(true)
    expect(maxAbsDiff(logitsOf(config, params), before)).toBe(0)
    disposeParams(config, params)
  })

  it("a head count that would break GQA cannot be requested: groups are removed whole", () => {
    // 4 query heads over 2 KV heads: keeping one group keeps 2 query heads, never 3.
    const params = initParams(config, 7)
    const pruned = Effect.runSync(removeKvGroups(config, params, [[0], [1]]))
    expect(pruned.config.layers.map((l) => [l.numHeads, l.numKeyValueHeads])).toEqual([[2, 1], [2, 1]])
    disposeParams(pruned.config, pruned.params)
  })
})

describe("tensor ownership", () => {
  const config = tinyConfig({}, { numLayers: 3 })
  const count = (c: ModelConfig, p: Params) => paramTensors(c, p).length

  it("consumes the input: cut tensors are released, nothing leaks", () => {
    const start = tf.memory().numTensors
    const params = initParams(config, 8)
    const n = count(config, params)
    const a = Effect.runSync(removeNeurons(config, params, [all(12), all(24), all(6)]))
    const b = Effect.runSync(removeKvGroups(a.config, a.params, [[0], [1], [0, 1]]))
    const c = Effect.runSync(removeLayers(b.config, b.params, [0, 2]))
    expect(tf.memory().numTensors).toBe(start + count(c.config, c.params))
    expect(count(c.config, c.params)).toBe(n - 9)
    expect(paramTensors(config, params).filter((t) => t.isDisposed).length).toBeGreaterThan(0)
    disposeParams(c.config, c.params)
    expect(tf.memory().numTensors).toBe(start)
  })

  it("keepOriginal leaves the input valid and the two models independent", () => {
    const start = tf.memory().numTensors
    const params = initParams(config, 9, 0.3)
    const before = logitsOf(config, params)
    const pruned = Effect.runSync(removeNeurons(config, params, [all(12), all(24), all(6)], { keepOriginal: true }))
    disposeParams(pruned.config, pruned.params)
    expect(maxAbsDiff(logitsOf(config, params), before)).toBe(0)
    disposeParams(config, params)
    expect(tf.memory().numTensors).toBe(start)
  })
})
