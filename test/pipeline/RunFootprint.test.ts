/**
 * A run's memory estimate counts what it allocates outside tfjs where the budget holds it (host
 * memory): ONNX Runtime's session when evaluation decodes on ort, and the model an
 * `export: [onnx]` holds while writing a stage. Preflight refuses a plan on ort that fits on tfjs.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { readCheckpointConfig } from "../../src/io/CheckpointFolder.ts"
import { toModelConfig } from "../../src/io/HfConfig.ts"
import { shapePresets } from "../../src/io/ShapePresets.ts"
import { weightBytes } from "../../src/model/Footprint.ts"
import { ortSessionBytes } from "../../src/onnx/GraphSession.ts"
import { onnxExportBytes } from "../../src/onnx/OnnxFile.ts"
import { bundledModelPath, parsePlan } from "../../src/pipeline/Plan.ts"
import { preflight } from "../../src/pipeline/Preflight.ts"
import { runFootprint } from "../../src/pipeline/RunSetup.ts"
import { Datasets } from "../../src/services/Datasets.ts"
import { DeviceMemory, makeDeviceMemory } from "../../src/services/DeviceMemory.ts"

/** Evaluation (64 sequences decoded at once) is this plan's largest stage on the bundled model. */
const planText = (extra = "", examples = 64) => `model: base
target: { parameters: 0.5 }
iterations: 1
data: { tune: [{ task: arith }], calibration: [{ task: arith }], evaluate: [{ task: arith }], calibrationExamples: 1, evaluationExamples: ${examples} }
tuner: { steps: 1, batchSize: 1, maxSeqLen: 8, adapter: { rank: 1 } }
backend: cpu
${extra}`

const host = { budget: "host memory" } as const
const wasm = { budget: "wasm heap" } as const

describe("a run's memory estimate", () => {
  it.effect("counts ONNX Runtime's session on ort where the budget is host memory, not in the wasm heap", () =>
    Effect.gen(function*() {
      const { config } = yield* readCheckpointConfig(bundledModelPath)
      const plan = yield* parsePlan(planText(), "plan.yaml")
      const tfjs = runFootprint(plan, config, { ...host, inference: "tfjs" })
      const ort = runFootprint(plan, config, { ...host, inference: "ort" })
      expect(ortSessionBytes(config)).toBeGreaterThanOrEqual(weightBytes(config))
      expect(ort.parts["evaluation: ONNX Runtime session"]).toBe(ortSessionBytes(config))
      expect(ort.bytes).toBe(tfjs.bytes + ortSessionBytes(config))
      expect(runFootprint(plan, config, { ...wasm, inference: "ort" })).toEqual(runFootprint(plan, config, { ...wasm, inference: "tfjs" }))
    }))

  it.effect("counts a perplexity evaluation's logits inside ONNX Runtime on ort, tfjs's block pass on tfjs", () =>
    Effect.gen(function*() {
      const { config } = yield* readCheckpointConfig(bundledModelPath)
      const plan = yield* parsePlan(planText().replace("evaluate: [{ task: arith }]", "evaluate: [{ task: general }]"), "plan.yaml")
      const evaluation = (inference: "tfjs" | "ort") =>
        Object.keys(runFootprint(plan, config, { ...host, inference }).parts).filter((part) => part.startsWith("evaluation: "))
      expect(evaluation("ort")).toEqual([
        "evaluation: evaluated model",
        "evaluation: ONNX Runtime session",
        "evaluation: a perplexity run's logits in ONNX Runtime"
      ])
      expect(evaluation("tfjs")).toEqual(["evaluation: evaluated model", "evaluation: perplexity pass, one block", "evaluation: a chunk of logits"])
    }))

  it.effect("counts the session of a scorer that runs on ONNX Runtime, not of one that stays on tfjs", () =>
    Effect.gen(function*() {
      const { config } = yield* readCheckpointConfig(bundledModelPath)
      // Many calibration sequences: scoring is the largest stage.
      const scoring = (scorer: string) => planText(`scorer: ${scorer}\n`, 1).replace("calibrationExamples: 1", "calibrationExamples: 4000")
      const activation = yield* parsePlan(scoring("activation"), "plan.yaml")
      const need = runFootprint(activation, config, { ...host, inference: "ort" })
      expect(need.parts["scoring: ONNX Runtime session"]).toBe(ortSessionBytes(config))
      expect(need.bytes - runFootprint(activation, config, { ...host, inference: "tfjs" }).bytes).toBe(ortSessionBytes(config))
      const taylor = yield* parsePlan(scoring("taylor"), "plan.yaml")
      expect(runFootprint(taylor, config, { ...host, inference: "ort" })).toEqual(runFootprint(taylor, config, { ...host, inference: "tfjs" }))
    }))

  it.effect("counts the model an ONNX export of each stage holds", () =>
    Effect.gen(function*() {
      // A real shape, whose weights outweigh the tiny plan's activations.
      const config = toModelConfig(shapePresets["smollm2-135m"])
      const plan = yield* parsePlan(planText("export: [onnx]\n", 1), "plan.yaml")
      const need = runFootprint(plan, config, { ...host, inference: "tfjs" })
      expect(onnxExportBytes(config)).toBeGreaterThanOrEqual(2 * weightBytes(config))
      expect(need.parts["ONNX export: exported stage in memory"]).toBe(onnxExportBytes(config))
      expect(runFootprint(plan, config, { ...wasm, inference: "tfjs" }).bytes).toBeLessThan(need.bytes)
    }))

  it.effect("preflight refuses a plan on ort that fits on tfjs, naming the session", () =>
    Effect.gen(function*() {
      const { config } = yield* readCheckpointConfig(bundledModelPath)
      const plan = yield* parsePlan(planText(), "plan.yaml")
      const tfjs = runFootprint(plan, config, { ...host, inference: "tfjs" }).bytes
      const ort = runFootprint(plan, config, { ...host, inference: "ort" }).bytes
      const memory = Layer.effect(DeviceMemory, makeDeviceMemory("host memory", (tfjs + ort) / 2))
      const check = (inference: "tfjs" | "ort") => preflight(plan, bundledModelPath, inference).pipe(Effect.provide(Layer.merge(Datasets.layer, memory)))
      expect((yield* check("tfjs")).footprint.bytes).toBe(tfjs)
      const refused = yield* Effect.flip(check("ort"))
      expect(refused._tag).toBe("MemoryBudgetExceeded")
      expect(refused.message).toContain("ONNX Runtime session")
    }))
})
