/**
 * `simmer eval <checkpoint> --task arith|program|general|<file.jsonl>`: accuracy (exact match or
 * pass@1) or perplexity, with decoding throughput. A built-in task is evaluated on its test
 * split; a JSONL file a user hands over is scored whole unless `--split` picks one part of the
 * hash split a plan would use. Zero examples is an error, never "0/0"; a task that is neither
 * built in nor a file says which tasks there are. The program task's fraction correct is pass@1.
 */
import { existsSync } from "node:fs"
import { resolve } from "node:path"
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { listCheckpointFolder } from "../io/CheckpointFolder.ts"
import { openLazyCheckpoint } from "../io/CheckpointReader.ts"
import { closestKey, orList } from "../io/SchemaProblems.ts"
import { loadTokenizer } from "../io/Tokenizer.ts"
import { checkpointSource } from "../model/WeightSource.ts"
import { disposeParams } from "../model/Params.ts"
import { Compute } from "../services/Compute.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { type DatasetRef, Datasets } from "../services/Datasets.ts"
import { splits, type TaskName, taskNames } from "../tasks/Task.ts"
import { evaluateGraded, evaluateText } from "../eval/Evaluate.ts"
import { tfjsGreedyDecoder } from "../eval/GreedyDecoder.ts"
import { openCheckpointSession } from "../onnx/CheckpointSession.ts"
import { ortGreedyDecoder } from "../onnx/OrtGenerate.ts"
import { ortGroupLoss } from "../onnx/OrtPerplexity.ts"
import { blockwiseGroupLoss } from "../eval/Perplexity.ts"
import { loadModelChecked } from "./LoadModel.ts"
import { backendFlag, jsonFlag, memoryFlag, seedFlag, skipInvalidFlag, withRange, withShownDefault } from "./Flags.ts"
import { InvalidArguments } from "./Output.ts"
import { makeProgress, passProgress } from "./Progress.ts"
import { checkpointArgumentDescription, localCheckpoint } from "./CheckpointArgument.ts"

const isBuiltin = (task: string): task is TaskName => (taskNames as ReadonlyArray<string>).includes(task)

/** A built-in task name (with the given seed) or a JSONL file path (divided by prompt hash). */
export const datasetRef = (task: string, seed: number, skipInvalid: boolean): DatasetRef =>
  isBuiltin(task) ? { task, seed } : { file: task, skipInvalid }

export const evalSplits = ["all", ...splits] as const
export type EvalSplit = (typeof evalSplits)[number]

/** A --task that is neither a built-in task nor a file: say which tasks there are, and the one probably meant. */
const checkTaskExists = (task: string) => {
  if (isBuiltin(task) || existsSync(task)) return Effect.void
  const meant = closestKey(task, taskNames)
  return Effect.fail(new InvalidArguments({
    message: `--task ${task} is neither a built-in task (${orList([...taskNames])}) nor a JSONL file (${resolve(task)} does not exist)` +
      (meant !== undefined ? `; did you mean ${meant}?` : ".")
  }))
}

/** What `--split` means for this data: a file is scored whole unless told otherwise; a built-in task has no end, so its test split. */
export const resolveEvalSplit = (task: string, split: Option.Option<EvalSplit>): Effect.Effect<EvalSplit, InvalidArguments> => {
  const chosen = Option.getOrElse(split, () => (isBuiltin(task) ? "test" : "all"))
  return isBuiltin(task) && chosen === "all"
    ? Effect.fail(new InvalidArguments({
      message: `--split all needs a file: the built-in task ${task} generates examples without end; choose --split test (its default), train or calibration.`
    }))
    : Effect.succeed(chosen)
}

export const evalCommand = Command.make(
  "eval",
  {
    checkpoint: Argument.String("checkpoint").pipe(Argument.withDescription(checkpointArgumentDescription)),
    task: Flag.String("task").pipe(
      Flag.withDescription(
        `${taskNames.join(" | ")} (built-in tasks), or a JSONL file of {question, answer} (GSM8K), {prompt, completion} or {text} lines.`
      ),
      withShownDefault("arith")
    ),
    split: Flag.Literals("split", evalSplits).pipe(
      Flag.withDescription(
        "Which part to evaluate. A file: all of it (default), or one part of the 80/10/10 split by prompt hash that plans " +
          "use (train, calibration, test). A built-in task: test (default), train or calibration."
      ),
      Flag.optional
    ),
    examples: Flag.Int("examples").pipe(
      Flag.withDescription("Evaluate at most this many examples, from the start of the split."),
      withRange({ min: 1 }),
      withShownDefault(500)
    ),
    inference: Flag.Literals("inference", ["tfjs", "ort"]).pipe(
      Flag.withDescription(
        "The engine that decodes graded tasks and computes perplexity. tfjs: simmer's transformer on --backend (perplexity " +
          "block by block from the checkpoint, so any size fits the device); ort: ONNX Runtime on the checkpoint's ONNX graph " +
          "(the graph `simmer export --onnx` writes; its WebGPU provider beside --backend webgpu, else its CPU provider), the " +
          "whole model in one session."
      ),
      withShownDefault("tfjs")
    ),
    batchSize: Flag.Int("batch-size").pipe(
      Flag.withDescription("Sequences decoded together; fewer when the device cannot hold them beside the model (a warning says so)."),
      withRange({ min: 1 }),
      withShownDefault(64)
    ),
    seed: seedFlag("Seed of a built-in task.", 1),
    skipInvalid: skipInvalidFlag,
    json: jsonFlag,
    backend: backendFlag,
    memory: memoryFlag
  },
  Effect.fnUntraced(function*(input) {
    yield* Compute
    yield* checkTaskExists(input.task)
    const { room } = yield* DeviceMemory
    const split = yield* resolveEvalSplit(input.task, input.split)
    const ref = datasetRef(input.task, input.seed, input.skipInvalid)
    const dataset = yield* (yield* Datasets).open("file" in ref && split === "all" ? { ...ref, splitBy: "none" } : ref)
    // With splitBy "none" every split is the whole file; evaluate one of them.
    const evaluated = split === "all" ? "test" : split
    const available = dataset.size(evaluated)
    if (available === 0) {
      // Only a file's hash split can be empty (an empty file fails to open).
      const records = splits.reduce((n, s) => n + (dataset.size(s) ?? 0), 0)
      return yield* new InvalidArguments({
        message: `${dataset.name} has no examples in its ${split} split: its ${records} record${records === 1 ? " is" : "s are"} divided 80/10/10 ` +
          `by a hash of each prompt, and none fell into ${split}. Leave out --split to evaluate the whole file.`
      })
    }
    // The folder, then the cheap tokenizer, then the weights.
    const dir = yield* localCheckpoint(input.checkpoint)
    yield* listCheckpointFolder(dir)
    const tokenizer = yield* loadTokenizer(dir)
    const metrics = dataset.grader === undefined
      ? yield* Effect.gen(function*() {
        const checkpoint = yield* openLazyCheckpoint(dir)
        const { config } = checkpoint
        const options = { examples: input.examples, room, split: evaluated, batchSize: input.batchSize, maxSeqLen: config.maxPositionEmbeddings }
        if (input.inference === "tfjs") {
          // Block by block from the lazily read checkpoint: any size fits.
          return yield* evaluateText(config, blockwiseGroupLoss(checkpointSource(checkpoint, room), passProgress(`eval ${dataset.name}, decoder blocks`)), tokenizer, dataset, options)
        }
        const session = yield* openCheckpointSession(checkpoint, { head: "nll" })
        const progress = makeProgress(`eval ${dataset.name}`, Math.min(input.examples, available ?? input.examples))
        const result = yield* evaluateText(config, ortGroupLoss(session, config, { onRows: (done) => progress.update(done) }), tokenizer, dataset, options)
        progress.finish()
        return result
      })
      : yield* Effect.gen(function*() {
        const { config, decoder } = input.inference === "ort"
          // ONNX Runtime runs the checkpoint's graph; the tfjs device holds none of it.
          ? yield* Effect.gen(function*() {
            const checkpoint = yield* openLazyCheckpoint(dir)
            return { config: checkpoint.config, decoder: ortGreedyDecoder(yield* openCheckpointSession(checkpoint, { logits: "last" }), checkpoint.config) }
          })
          // tfjs decodes with the whole model on the device, after checking that it fits.
          : yield* Effect.gen(function*() {
            const checkpoint = yield* loadModelChecked(dir, "eval on a graded task", room)
            yield* Effect.addFinalizer(() => Effect.sync(() => disposeParams(checkpoint.config, checkpoint.params)))
            return { config: checkpoint.config, decoder: tfjsGreedyDecoder(checkpoint.config, checkpoint.params) }
          })
        const progress = makeProgress(`eval ${dataset.name}`, Math.min(input.examples, available ?? input.examples))
        const result = yield* evaluateGraded(config, decoder, tokenizer, dataset, {
          examples: input.examples,
          split: evaluated,
          batchSize: input.batchSize,
          room,
          maxSeqLen: config.maxPositionEmbeddings,
          onProgress: (done) => progress.update(done)
        })
        progress.finish()
        return result
      })
    if (input.json) {
      yield* Console.log(JSON.stringify({ checkpoint: input.checkpoint, split, ...metrics, skippedLines: dataset.skipped }, null, 2))
      return
    }
    const headline = metrics.accuracy !== undefined
      ? `${dataset.grader?.metric ?? "accuracy"} ${(metrics.accuracy * 100).toFixed(1)}% (${metrics.correct}/${metrics.examples})`
      : `perplexity ${metrics.perplexity!.toFixed(3)} over ${metrics.examples} examples`
    yield* Console.log(
      `${dataset.name} (${split === "all" ? "whole file" : `${split} split`}): ${headline}; ` +
        `${metrics.examplesPerSecond.toFixed(1)} examples/s` +
        (metrics.tokensPerSecond !== undefined ? `, ${metrics.tokensPerSecond.toFixed(0)} generated tokens/s` : "") +
        `; ${metrics.parameters.toLocaleString("en-US")} parameters` +
        (dataset.skipped > 0 ? `; ${dataset.skipped} invalid lines skipped` : "")
    )
  }, Effect.scoped)
).pipe(
  Command.withDescription("Evaluate a checkpoint on a built-in task or a JSONL file: accuracy / pass@1, or perplexity."),
  Command.withExamples([
    { command: "simmer eval models/base --task program", description: "pass@1 on the program task's test split" },
    { command: "simmer eval ./ckpt --task gsm8k_test.jsonl --json", description: "GSM8K-style exact match on every line of the file" },
    { command: "simmer eval ./ckpt --task mixed.jsonl --split test", description: "Only the test part of a file a plan also tunes on" }
  ])
)
