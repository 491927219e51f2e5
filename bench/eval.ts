/**
 * Evaluation throughput on the bundled base model: greedy decoding with the KV cache over each
 * graded task's test split, as `simmer eval` runs it (src/eval/Evaluate.ts), at one or more
 * batch sizes. Reports examples/s and generated tokens/s (time includes tokenizing, prefill,
 * decoding and grading, as a user waits for it) and the accuracy, which must not depend on the
 * batch size: a difference there is a padding bug, so the result flags it.
 */
import { taskDataset } from "../layers/Datasets.ts"
import { evaluateDataset } from "../src/eval/Evaluate.ts"
import { disposeParams } from "../src/model/Params.ts"
import { builtinTask } from "../src/tasks/Builtin.ts"
import {
  type Benchmark,
  describeConfig,
  intOption,
  listOption,
  loadBenchModel,
  machineInfo,
  numTensors,
  type Options,
  progress,
  round,
  run,
  useBackend
} from "./common.ts"

export const evalBench: Benchmark = {
  summary: "evaluation throughput (examples/s, generated tokens/s) of the bundled base model on arith and program",
  usage: "eval [--backend wasm] [--model models/base] [--tasks arith,program] [--examples 200] [--batch-sizes 16,64]",
  options: ["backend", "model", "tasks", "examples", "batch-sizes"],
  run: async (options: Options) => {
    const backend = await useBackend(options.get("backend") ?? "wasm")
    const model = await loadBenchModel(options.get("model") ?? "models/base")
    const examples = intOption(options, "examples", 200)
    const batchSizes = listOption(options, "batch-sizes", ["16", "64"]).map(Number)
    const tasks = listOption(options, "tasks", ["arith", "program"])
    for (const t of tasks) if (t !== "arith" && t !== "program") throw new Error(`--tasks: "${t}" is not a graded built-in task`)
    progress(`eval: ${model.source}, ${backend}`)
    const tensorsBefore = numTensors()
    // Warm-up: the first decode pays for kernel set-up.
    const warm = taskDataset(builtinTask({ task: "arith", seed: 1 }))
    await run(evaluateDataset(model.config, model.params, model.tokenizer, warm, { examples: 8, batchSize: 8, maxSeqLen: model.config.maxPositionEmbeddings }))
    const results: Array<Record<string, unknown>> = []
    for (const task of tasks as Array<"arith" | "program">) {
      const dataset = taskDataset(builtinTask({ task, seed: 1 }))
      const accuracies = new Set<number>()
      for (const batchSize of batchSizes) {
        const m = await run(evaluateDataset(model.config, model.params, model.tokenizer, dataset, {
          examples,
          batchSize,
          maxSeqLen: model.config.maxPositionEmbeddings
        }))
        accuracies.add(m.accuracy!)
        results.push({
          task,
          batchSize,
          examples: m.examples,
          accuracy: round(m.accuracy!, 4),
          seconds: round(m.seconds, 2),
          examplesPerSecond: round(m.examplesPerSecond, 1),
          generatedTokensPerSecond: Math.round(m.tokensPerSecond ?? 0)
        })
        progress(`  ${task} batch ${batchSize}: ${round(m.examplesPerSecond, 1)} examples/s, ${Math.round(m.tokensPerSecond ?? 0)} tokens/s, accuracy ${m.accuracy}`)
      }
      if (accuracies.size > 1) progress(`  WARNING: ${task} accuracy differs between batch sizes: ${[...accuracies].join(", ")}`)
    }
    const leaked = numTensors() - tensorsBefore
    disposeParams(model.config, model.params)
    return {
      benchmark: "eval",
      machine: machineInfo(),
      backend,
      model: { source: model.source, ...describeConfig(model.config) },
      results,
      accuracyIndependentOfBatchSize: tasks.every((task) =>
        new Set(results.filter((r) => r.task === task).map((r) => r.accuracy)).size === 1),
      tensorsLeaked: leaked
    }
  }
}
