/**
 * What pruning alone costs, per scorer: accuracy on arith and program right after a one-shot
 * prune of the bundled base model, before any tuning. MLP neurons at 25% and 50% removal (every
 * neuron scorer, uniform per layer), and one and two decoder blocks removed (every layer
 * scorer). Calibration: the calibration splits of both tasks (64 examples each; contrastive uses
 * its reference counts: 10 task samples per task and 1000 general-text samples).
 */
import { Effect, Layer } from "effect"
import { evaluateDataset } from "../src/eval/Evaluate.ts"
import { countParams, disposeParams } from "../src/model/Params.ts"
import { loadCalibration } from "../src/prune/CalibrationSource.ts"
import { pruneOnce } from "../src/prune/Prune.ts"
import { type CalibrationData, scorerReads, scorersFor } from "../src/prune/Scorers.ts"
import type { Unit } from "../src/prune/Scores.ts"
import { builtinTask } from "../src/tasks/Builtin.ts"
import {
  type Benchmark,
  describeConfig,
  intOption,
  loadBenchModel,
  machineInfo,
  type Options,
  progress,
  round,
  run,
  useBackend,
  benchRoom
} from "./common.ts"
import { Datasets } from "../src/services/Datasets.ts"
import { taskDataset } from "../src/services/DatasetsInMemory.ts"

const tasks = ["arith", "program"] as const

export const pruneAccuracy: Benchmark = {
  summary: "accuracy right after one-shot pruning (no tuning), per scorer: 25%/50% of MLP neurons, 1/2 blocks",
  usage: "prune-accuracy [--backend wasm] [--model models/base] [--examples 200]",
  options: ["backend", "model", "examples"],
  run: async (options: Options) => {
    const backend = await useBackend(options.get("backend") ?? "wasm")
    const room = await benchRoom()
    const model = await loadBenchModel(options.get("model") ?? "models/base")
    const examples = intOption(options, "examples", 200)
    const { config, params, tokenizer } = model
    const maxSeqLen = config.maxPositionEmbeddings
    const datasets = Object.fromEntries(tasks.map((t) => [t, taskDataset(builtinTask({ task: t, seed: 1 }))]))
    const evaluate = async (c: typeof config, p: typeof params) => {
      const out: Record<string, number> = {}
      for (const t of tasks) {
        const m = await run(evaluateDataset(c, p, tokenizer, datasets[t], { examples, batchSize: 50, maxSeqLen, room }))
        out[t] = round(m.accuracy!, 4)
      }
      return out
    }
    // Loaded once per scorer: every case a scorer appears in uses the same data.
    const loaded = new Map<string, Promise<CalibrationData>>()
    const calibration = (unit: Unit, scorer: string): Promise<CalibrationData> => {
      if (!loaded.has(scorer)) loaded.set(scorer, load(unit, scorer))
      return loaded.get(scorer)!
    }
    const load = async (unit: Unit, scorer: string): Promise<CalibrationData> => {
      const parts = await Promise.all(tasks.map((t) =>
        run(loadCalibration(tokenizer, scorerReads(unit, scorer), { task: { task: t, seed: 1 }, batchSize: 16, maxSeqLen }).pipe(
          Effect.provide(Layer.orDie(Datasets.layer))
        ))
      ))
      const general = parts[0].general
      return { task: parts.flatMap((p) => p.task), ...(general !== undefined ? { general } : {}) }
    }
    progress(`prune-accuracy: ${model.source}, ${backend}`)
    const base = await evaluate(config, params)
    progress(`  unpruned: ${JSON.stringify(base)}`)
    const cases: Array<{ unit: Unit; label: string; keep: number }> = [
      { unit: "neurons", label: "25% of MLP neurons removed", keep: 0.75 },
      { unit: "neurons", label: "50% of MLP neurons removed", keep: 0.5 },
      { unit: "layers", label: "1 block removed", keep: (config.layers.length - 1) / config.layers.length },
      { unit: "layers", label: "2 blocks removed", keep: (config.layers.length - 2) / config.layers.length }
    ]
    const rows: Array<Record<string, unknown>> = []
    for (const c of cases) {
      for (const scorer of scorersFor[c.unit]) {
        const data = await calibration(c.unit, scorer)
        const started = performance.now()
        const result = await run(pruneOnce(config, params, room, { unit: c.unit, scorer, target: { kind: "fraction", keep: c.keep } }, data, {
          score: { seed: 1 },
          surgery: { keepOriginal: true }
        }))
        const scoreSeconds = (performance.now() - started) / 1000
        const accuracy = await evaluate(result.model.config, result.model.params)
        rows.push({
          pruned: c.label,
          scorer,
          nonEmbeddingShare: round(countParams(result.model.config).nonEmbedding / countParams(config).nonEmbedding, 3),
          ...(c.unit === "layers" && result.plan.unit === "layers" ? { blocksKept: result.plan.keep } : {}),
          accuracy,
          pruneSeconds: round(scoreSeconds, 2)
        })
        progress(`  ${c.label}, ${scorer}: ${JSON.stringify(accuracy)}`)
        disposeParams(result.model.config, result.model.params)
      }
    }
    disposeParams(config, params)
    return {
      benchmark: "prune-accuracy",
      machine: machineInfo(),
      backend,
      model: { source: model.source, ...describeConfig(config) },
      examplesPerTask: examples,
      unpruned: base,
      rows
    }
  }
}
