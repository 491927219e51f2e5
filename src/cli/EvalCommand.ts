/**
 * `simmer eval <checkpoint> --task arith|program|general|<file.jsonl>`: accuracy (exact match or
 * pass@1) or perplexity on a test split, with decoding throughput.
 */
import { Console, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { openCheckpoint } from "../io/Checkpoint.ts"
import { checkpointSource } from "../model/WeightSource.ts"
import { loadTokenizer } from "../io/Tokenizer.ts"
import { disposeParams } from "../model/Params.ts"
import { Compute } from "../services/Compute.ts"
import { type DatasetRef, Datasets } from "../services/Datasets.ts"
import { evaluateDataset, evaluateText } from "../eval/Evaluate.ts"
import { loadModelChecked } from "./LoadModel.ts"
import { backendFlag, jsonFlag, skipInvalidFlag } from "./Flags.ts"
import { makeProgress, passProgress } from "./Progress.ts"

/** A built-in task name (with the given seed) or a JSONL file path. */
export const datasetRef = (task: string, seed: number, skipInvalid: boolean): DatasetRef =>
  task === "arith" || task === "program" || task === "general" ? { task, seed } : { file: task, skipInvalid }

export const evalCommand = Command.make(
  "eval",
  {
    checkpoint: Argument.String("checkpoint").pipe(Argument.withDescription("A Hugging Face checkpoint folder with a tokenizer.")),
    task: Flag.String("task").pipe(
      Flag.withDescription(
        "arith | program | general (built-in tasks), or a JSONL file of {question, answer} (GSM8K), {prompt, completion} or {text} lines."
      ),
      Flag.withDefault("arith")
    ),
    examples: Flag.Int("examples").pipe(Flag.withDescription("Test examples to evaluate."), Flag.withDefault(500)),
    batchSize: Flag.Int("batch-size").pipe(Flag.withDescription("Sequences decoded together."), Flag.withDefault(64)),
    seed: Flag.Int("seed").pipe(Flag.withDescription("Seed of a built-in task (its test split)."), Flag.withDefault(1)),
    skipInvalid: skipInvalidFlag,
    json: jsonFlag,
    backend: backendFlag
  },
  Effect.fnUntraced(function*(input) {
    yield* Compute
    const dataset = yield* (yield* Datasets).open(datasetRef(input.task, input.seed, input.skipInvalid))
    const tokenizer = yield* loadTokenizer(input.checkpoint)
    const metrics = dataset.grader === undefined
      // Perplexity runs block by block from the lazily read checkpoint: any size fits.
      ? yield* Effect.gen(function*() {
        const checkpoint = yield* openCheckpoint(input.checkpoint)
        return yield* evaluateText(checkpointSource(checkpoint), tokenizer, dataset, {
          examples: input.examples,
          batchSize: input.batchSize,
          maxSeqLen: checkpoint.config.maxPositionEmbeddings,
          onBlock: passProgress(`eval ${dataset.name}, decoder blocks`)
        })
      })
      : yield* Effect.gen(function*() {
        const checkpoint = yield* loadModelChecked(input.checkpoint, "eval on a graded task")
        yield* Effect.addFinalizer(() => Effect.sync(() => disposeParams(checkpoint.config, checkpoint.params)))
        const progress = makeProgress(`eval ${dataset.name}`, input.examples)
        const result = yield* evaluateDataset(checkpoint.config, checkpoint.params, tokenizer, dataset, {
          examples: input.examples,
          batchSize: input.batchSize,
          maxSeqLen: checkpoint.config.maxPositionEmbeddings,
          onProgress: (done) => progress.update(done)
        })
        progress.finish()
        return result
      })
    if (input.json) {
      yield* Console.log(JSON.stringify({ checkpoint: input.checkpoint, ...metrics, skippedLines: dataset.skipped }, null, 2))
      return
    }
    const headline = metrics.accuracy !== undefined
      ? `accuracy ${(metrics.accuracy * 100).toFixed(1)}% (${metrics.correct}/${metrics.examples})`
      : `perplexity ${metrics.perplexity!.toFixed(3)} over ${metrics.examples} examples`
    yield* Console.log(
      `${dataset.name}: ${headline}; ${metrics.examplesPerSecond.toFixed(1)} examples/s` +
        (metrics.tokensPerSecond !== undefined ? `, ${metrics.tokensPerSecond.toFixed(0)} generated tokens/s` : "") +
        `; ${metrics.parameters.toLocaleString("en-US")} parameters` +
        (dataset.skipped > 0 ? `; ${dataset.skipped} invalid lines skipped` : "")
    )
  }, Effect.scoped)
).pipe(
  Command.withDescription("Evaluate a checkpoint on a built-in task or a JSONL file: accuracy / pass@1, or perplexity."),
  Command.withExamples([
    { command: "simmer eval models/base --task program", description: "pass@1 on the program task's test split" },
    { command: "simmer eval ./ckpt --task gsm8k_test.jsonl --examples 200 --json", description: "GSM8K-style exact match" }
  ])
)
