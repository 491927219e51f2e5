/**
 * Pruning overhead: seconds to score each unit with each scorer and to cut the model (surgery),
 * next to the seconds of one training step of the same model, so the cost of the prune half
 * of a loop iteration can be set against its tuning half (many steps).
 *
 * Model: the bundled base model (models/base) when it exists, else a freshly initialised model
 * of the same shape (the base recipe's): timings depend on shapes, not on trained values.
 * Calibration: the `arith` task's calibration split (the contrastive scorer: the reference's 10
 * task samples and 1000 general-text samples). Training step: one AdamW update of the base
 * recipe (batch 32, in-thread gradients), the step the loop's tuner takes.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import type { ModelConfig } from "../src/model/ModelConfig.ts"
import { countParams, disposeParams, paramTensors } from "../src/model/Params.ts"
import { type CalibrationRequest, loadCalibration } from "../src/prune/CalibrationSource.ts"
import { scoreModel, scorerReads, scorersFor } from "../src/prune/Scorers.ts"
import { type Unit, units } from "../src/prune/Scores.ts"
import { keepCount, unitCounts } from "../src/prune/Select.ts"
import { applyPlan, type KeepPlan } from "../src/prune/Surgery.ts"
import { disposeAdamW } from "../src/tune/AdamW.ts"
import { baseModelConfig, baseTasks, baseTrainingStep, defaultBaseRecipe, initBaseTraining } from "../src/tune/BaseTraining.ts"
import type { BackendName } from "../src/compute/Backend.ts"
import { Compute } from "../src/services/Compute.ts"
import {
  type Benchmark,
  describeConfig,
  intOption,
  listOption,
  loadBenchModel,
  machineInfo,
  median,
  numTensors,
  type Options,
  progress,
  round,
  run,
  useBackend,
  benchRoom
} from "./common.ts"
import { Datasets } from "../src/services/Datasets.ts"
import { Gradients } from "../src/services/Gradients.ts"

const seconds = (since: number) => (performance.now() - since) / 1000

/** Median seconds of one base-recipe training step (after one warm-up step). */
const trainingStep = async (steps: number) => {
  const recipe = defaultBaseRecipe
  const tasks = baseTasks(recipe.seed)
  let state = initBaseTraining(recipe)
  const times: Array<number> = []
  for (let i = 0; i < steps + 1; i++) {
    const started = performance.now()
    const next = await run(baseTrainingStep(recipe, tasks, state).pipe(Effect.provide(Gradients.layerLocal.pipe(Layer.provide(Layer.sync(Compute, () => Compute.of({ backend: tf.getBackend() as BackendName, description: "bench" })))))))
    state = next.state
    if (i > 0) times.push(seconds(started))
    progress(`  training step ${i + 1}/${steps + 1}: ${seconds(started).toFixed(2)} s${i === 0 ? " (warm-up)" : ""}`)
  }
  disposeParams(baseModelConfig(recipe), state.params)
  disposeAdamW(state.optimizer)
  return { batchSize: recipe.batchSizes.arith, maxSeqLen: recipe.maxSeqLen, seconds: round(median(times), 3), steps: times.length }
}

/** The keep plan of one small step (PTL-sized for neurons) that surgery is timed on. */
const stepPlan = (config: ModelConfig, unit: Unit): KeepPlan => {
  const sizes = unitCounts(config, unit)
  const first = (n: number) => Array.from({ length: n }, (_, i) => i)
  switch (unit) {
    case "neurons":
      return { unit, keep: sizes.map((n) => first(keepCount(n, 0.95))) }
    case "heads":
      return { unit, keep: sizes.map((n) => first(Math.max(1, n - 1))) }
    case "layers":
      return { unit, keep: first(Math.max(1, sizes[0] - 1)) }
  }
}

export const prune: Benchmark = {
  summary: "scoring time per scorer and surgery time per unit, next to one training step (pruning overhead per iteration)",
  usage: "prune [--backend wasm] [--model models/base] [--examples 64] [--general-examples 1000] [--batch-size 16] " +
    "[--scorers neurons/activation,...] [--repeats 3] [--train-steps 3]",
  run: async (options: Options) => {
    const backend = options.get("backend") ?? "wasm"
    const backendDescription = await useBackend(backend)
    const room = await benchRoom()
    const examples = intOption(options, "examples", 64)
    const generalExamples = intOption(options, "general-examples", 1000)
    const batchSize = intOption(options, "batch-size", 16)
    const repeats = Math.max(1, intOption(options, "repeats", 3))
    const all = units.flatMap((unit) => scorersFor[unit].map((s) => `${unit}/${s}`))
    const chosen = listOption(options, "scorers", all)
    for (const name of chosen) if (!all.includes(name)) throw new Error(`--scorers: unknown "${name}" (${all.join(", ")})`)

    const model = await loadBenchModel(options.get("model") ?? "models/base")
    const { config, params, tokenizer } = model
    progress(`prune: ${model.source}, ${countParams(config).total.toLocaleString("en-US")} parameters, ${backendDescription}`)
    const tensorsBefore = numTensors()
    // Warm-up: the first forward pays for kernel set-up, which no scorer should be charged with.
    const warmup = await run(loadCalibration(tokenizer, "task", {
      task: { task: "arith", seed: 1 },
      examples: batchSize,
      batchSize,
      maxSeqLen: config.maxPositionEmbeddings
    }).pipe(Effect.provide(Layer.orDie(Datasets.layer))))
    await run(scoreModel(config, params, room, "neurons", "activation", warmup))

    const scoring: Record<string, { seconds: number; samples: number; tokens: number }> = {}
    for (const name of chosen) {
      const [unit, scorer] = name.split("/") as [Unit, string]
      const request: CalibrationRequest = {
        task: { task: "arith", seed: 1 },
        general: { task: "general", seed: 1 },
        generalExamples,
        batchSize,
        maxSeqLen: config.maxPositionEmbeddings,
        ...(scorer === "contrastive" ? {} : { examples })
      }
      const data = await run(loadCalibration(tokenizer, scorerReads(unit, scorer), request).pipe(Effect.provide(Layer.orDie(Datasets.layer))))
      const started = performance.now()
      const scores = await run(scoreModel(config, params, room, unit, scorer, data, { seed: 1 }))
      scoring[name] = { seconds: round(seconds(started), 3), samples: scores.samples, tokens: scores.tokens }
      progress(`  score ${name}: ${scoring[name].seconds} s (${scores.samples} sequences, ${scores.tokens} tokens)`)
    }

    const surgery: Record<string, { seconds: number; removedParameters: number }> = {}
    for (const unit of units) {
      const plan = stepPlan(config, unit)
      const times: Array<number> = []
      let removed = 0
      for (let r = 0; r < repeats; r++) {
        const started = performance.now()
        const cut = await run(applyPlan(config, params, plan, { keepOriginal: true }))
        // Surgery is lazy on some backends until the data is needed: wait for every new tensor.
        await Promise.all(paramTensors(cut.config, cut.params).map((t) => t.data()))
        times.push(seconds(started))
        removed = countParams(config).total - countParams(cut.config).total
        disposeParams(cut.config, cut.params)
      }
      surgery[unit] = { seconds: round(median(times), 4), removedParameters: removed }
      progress(`  surgery ${unit}: ${surgery[unit].seconds} s`)
    }
    const leaked = numTensors() - tensorsBefore
    disposeParams(config, params)

    progress("  training step of the base recipe")
    const step = await trainingStep(intOption(options, "train-steps", 3))
    const overhead = Object.fromEntries(Object.entries(scoring).map(([name, s]) => {
      const unit = name.split("/")[0]
      return [name, round((s.seconds + surgery[unit].seconds) / step.seconds, 2)]
    }))
    return {
      benchmark: "prune",
      machine: machineInfo(),
      backend: backendDescription,
      model: { source: model.source, ...describeConfig(config) },
      calibration: { task: "arith", examples, contrastive: { taskSamples: 10, generalSamples: generalExamples }, batchSize },
      scoringSeconds: scoring,
      surgerySeconds: surgery,
      trainingStep: step,
      /** (scoring + surgery) / one training step: a loop iteration that tunes for more steps than this amortises pruning. */
      pruneOverheadInTrainingSteps: overhead,
      tensorsLeaked: leaked,
      tfMemoryBytes: tf.memory().numBytes
    }
  }
}
