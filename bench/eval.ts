/**
 * Evaluation throughput on the bundled base model: greedy decoding with the KV cache over each
 * graded task's test split, as `simmer eval` runs it (src/eval/Evaluate.ts), at one or more
 * batch sizes and on each inference engine (`--inference tfjs|ort`: simmer's tfjs transformer
 * on the chosen backend, ONNX Runtime on the model's ONNX graph, its session opened as a run's
 * evaluation opens it),
 * side by side in the same run: the engines alternate within each round, and each figure is the
 * median of `--rounds` rounds. Reports examples/s and generated tokens/s (time includes
 * tokenizing, prefill, decoding and grading, as a user waits for it) and the accuracy, which
 * must not depend on the batch size or the engine: a difference there is a padding or
 * numerics bug, so the result flags it.
 */
import { Effect, Exit, Scope } from "effect"
import { evaluateGraded } from "../src/eval/Evaluate.ts"
import { type GreedyDecoder, tfjsGreedyDecoder } from "../src/eval/GreedyDecoder.ts"
import { disposeParams } from "../src/model/Params.ts"
import { openModelSession } from "../src/onnx/ModelSession.ts"
import { ortGreedyDecoder } from "../src/onnx/OrtGenerate.ts"
import { builtinTask } from "../src/tasks/Builtin.ts"
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
import { taskDataset } from "../src/services/DatasetsInMemory.ts"

export const evalBench: Benchmark = {
  summary: "evaluation throughput (examples/s, generated tokens/s) of the bundled base model on arith and program, tfjs and ONNX Runtime side by side",
  usage: "eval [--backend wasm] [--model models/base] [--tasks arith,program] [--examples 200] [--batch-sizes 16,64] [--engines tfjs,ort] [--rounds 3]",
  options: ["backend", "model", "tasks", "examples", "batch-sizes", "engines", "rounds"],
  run: async (options: Options) => {
    const backend = await useBackend(options.get("backend") ?? "wasm")
    const room = await benchRoom()
    const model = await loadBenchModel(options.get("model") ?? "models/base")
    const examples = intOption(options, "examples", 200)
    const rounds = intOption(options, "rounds", 3)
    const batchSizes = listOption(options, "batch-sizes", ["16", "64"]).map(Number)
    const tasks = listOption(options, "tasks", ["arith", "program"])
    const engineNames = listOption(options, "engines", ["tfjs", "ort"])
    for (const t of tasks) if (t !== "arith" && t !== "program") throw new Error(`--tasks: "${t}" is not a graded built-in task`)
    for (const e of engineNames) if (e !== "tfjs" && e !== "ort") throw new Error(`--engines: "${e}" is not tfjs or ort`)
    progress(`eval: ${model.source}, tfjs on ${backend}, ONNX Runtime`)
    const tensorsBefore = numTensors()
    // The session a run's evaluation opens: the weights through a temporary file, logits at the last position.
    const scope = Effect.runSync(Scope.make())
    const startedOrt = performance.now()
    const session = engineNames.includes("ort")
      ? await Effect.runPromise(Scope.provide(scope)(openModelSession(model, { logits: "last" })))
      : undefined
    const ortSessionSeconds = (performance.now() - startedOrt) / 1000
    const engines: Record<string, GreedyDecoder> = {
      tfjs: tfjsGreedyDecoder(model.config, model.params),
      ...(session !== undefined ? { ort: ortGreedyDecoder(session, model.config) } : {})
    }
    const evaluate = (engine: string, task: "arith" | "program", count: number, batchSize: number) =>
      run(evaluateGraded(model.config, engines[engine], model.tokenizer, taskDataset(builtinTask({ task, seed: 1 })), {
        examples: count,
        batchSize,
        maxSeqLen: model.config.maxPositionEmbeddings,
        room
      }))
    // Warm-up: the first decode pays for kernel set-up.
    for (const engine of engineNames) await evaluate(engine, "arith", 8, 8)
    const results: Array<Record<string, unknown>> = []
    for (const task of tasks as Array<"arith" | "program">) {
      for (const batchSize of batchSizes) {
        const seconds: Record<string, Array<number>> = {}
        const measured: Record<string, { examples: number; accuracy: number; tokens: number }> = {}
        for (let r = 0; r < rounds; r++) {
          for (const engine of engineNames) {
            const m = await evaluate(engine, task, examples, batchSize)
            ;(seconds[engine] ??= []).push(m.seconds)
            measured[engine] = { examples: m.examples, accuracy: m.accuracy!, tokens: (m.tokensPerSecond ?? 0) * m.seconds }
          }
        }
        for (const engine of engineNames) {
          const s = median(seconds[engine])
          const { examples: n, accuracy, tokens } = measured[engine]
          results.push({
            task,
            batchSize,
            engine,
            examples: n,
            accuracy: round(accuracy, 4),
            seconds: { median: round(s, 2), min: round(Math.min(...seconds[engine]), 2), max: round(Math.max(...seconds[engine]), 2) },
            examplesPerSecond: round(n / s, 1),
            generatedTokensPerSecond: Math.round(tokens / s)
          })
          progress(`  ${task} batch ${batchSize} ${engine}: ${round(n / s, 1)} examples/s, ${Math.round(tokens / s)} tokens/s (median of ${rounds}), accuracy ${accuracy}`)
        }
      }
    }
    const leaked = numTensors() - tensorsBefore
    await Effect.runPromise(Scope.close(scope, Exit.void))
    disposeParams(model.config, model.params)
    const speedups = engineNames.length === 2
      ? tasks.flatMap((task) => batchSizes.map((batchSize) => {
        const of = (engine: string) => results.find((r) => r.task === task && r.batchSize === batchSize && r.engine === engine)!
        return { task, batchSize, ortOverTfjs: round((of("ort").examplesPerSecond as number) / (of("tfjs").examplesPerSecond as number), 2) }
      }))
      : []
    return {
      benchmark: "eval",
      machine: machineInfo(),
      backend,
      engines: engineNames,
      rounds,
      model: { source: model.source, ...describeConfig(model.config) },
      ...(session !== undefined ? { ortSessionSeconds: round(ortSessionSeconds, 2) } : {}),
      results,
      speedups,
      accuracyIndependentOfBatchSizeAndEngine: tasks.every((task) =>
        new Set(results.filter((r) => r.task === task).map((r) => r.accuracy)).size === 1),
      tensorsLeaked: leaked
    }
  }
}
