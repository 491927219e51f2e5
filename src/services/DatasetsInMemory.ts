/**
 * Datasets in memory, behind `Datasets.layer`: built-in tasks are generated on demand; JSONL
 * files and Hub datasets are read and validated once, then held in memory (split by prompt hash
 * unless `splitBy: "none"`) and cached for the life of the service.
 */
import { Effect, Stream } from "effect"
import { loadHubDataset } from "../hub/HubDataset.ts"
// Types only: Datasets.ts builds its layer from this file.
import type { Dataset, DatasetRef, Datasets, FileRef, HubDatasetRef } from "./Datasets.ts"
import { exactMatchGrader, finalAnswerGrader } from "../tasks/Answer.ts"
import { builtinTask, InvalidTaskKnobs, type TaskRef } from "../tasks/Builtin.ts"
import { type JsonlFile, loadJsonl, splitKeyOf, toExample } from "../tasks/Jsonl.ts"
import type { Example, Split, Task } from "../tasks/Task.ts"
import { splitOf } from "../tasks/Task.ts"

/** A built-in task as a dataset: every split is unbounded. */
export const taskDataset = (task: Task<object>): Dataset => ({
  name: task.name,
  // Every graded task but program ends its completion in a `#### <answer>` line.
  format: task.name === "general" ? "text" : task.name === "program" ? "prompt-completion" : "question-answer",
  grader: task.name === "general" ? undefined : { metric: task.metric, extract: task.extract, grade: task.grade },
  skipped: 0,
  size: () => undefined,
  take: task.take,
  chunk: task.chunk,
  stream: (split) => Stream.iterate(0, (i) => i + 1).pipe(Stream.map((i) => task.example(split, i)))
})

/** A loaded JSONL file as a dataset. */
export const fileDataset = (loaded: JsonlFile, splitBy: "hash" | "none" = "hash"): Dataset => {
  const bySplit: Record<Split, Array<Example>> = { train: [], calibration: [], test: [] }
  for (const { record } of loaded.records) {
    const example = toExample(record)
    if (splitBy === "hash") bySplit[splitOf(splitKeyOf(record))].push(example)
    else for (const split of ["train", "calibration", "test"] as const) bySplit[split].push(example)
  }
  const train = bySplit.train
  return {
    name: loaded.file,
    format: loaded.format,
    grader: loaded.format === "question-answer"
      ? finalAnswerGrader
      : loaded.format === "prompt-completion"
      ? exactMatchGrader
      : undefined,
    skipped: loaded.skipped.length,
    size: (split) => bySplit[split].length,
    take: (split, count, start = 0) => bySplit[split].slice(start, start + count),
    chunk: (i, size) =>
      train.length === 0 ? [] : Array.from({ length: size }, (_, j) => train[(i * size + j) % train.length]),
    stream: (split) => Stream.fromArray(bySplit[split])
  }
}

/**
 * A built-in task as a dataset. Drawing one example of each split up front turns knobs that
 * leave a split empty (e.g. `maxChars` too small for `maxSteps`) into a typed error here
 * rather than a defect at the first `take`.
 */
const openTask = (ref: TaskRef) =>
  Effect.try({
    try: () => {
      const task = builtinTask(ref)
      for (const split of ["train", "calibration", "test"] as const) task.example(split, 0)
      return taskDataset(task)
    },
    catch: (cause) => new InvalidTaskKnobs({ task: ref.task, issue: cause instanceof Error ? cause.message : String(cause) })
  })

/** A fresh Datasets service with an empty cache. */
export const makeDatasetsInMemory: Effect.Effect<Datasets["Service"]> = Effect.sync(() => {
  const files = new Map<string, Dataset>()

  const openFile = Effect.fnUntraced(function*(ref: FileRef) {
    const key = JSON.stringify([ref.file, ref.skipInvalid ?? false, ref.splitBy ?? "hash"])
    const cached = files.get(key)
    if (cached !== undefined) return cached
    const loaded = yield* loadJsonl(ref.file, { skipInvalid: ref.skipInvalid ?? false })
    if (loaded.skipped.length > 0) {
      const first = loaded.skipped[0]
      yield* Effect.logWarning(
        `skipped ${loaded.skipped.length} invalid line(s) of ${ref.file}; first: line ${first.line}: ${first.issue}`
      )
    }
    const dataset = fileDataset(loaded, ref.splitBy ?? "hash")
    files.set(key, dataset)
    return dataset
  })

  // Read from the Hub cache at the revision the reference names (a run pins it to a commit).
  const openHub = Effect.fnUntraced(function*(ref: HubDatasetRef) {
    const key = JSON.stringify(ref)
    const cached = files.get(key)
    if (cached !== undefined) return cached
    const dataset = fileDataset(yield* loadHubDataset(ref), ref.splitBy ?? (ref.split !== undefined ? "none" : "hash"))
    files.set(key, dataset)
    return dataset
  })

  const open = Effect.fn("Datasets.open")(function*(ref: DatasetRef) {
    return "file" in ref ? yield* openFile(ref) : "hub" in ref ? yield* openHub(ref) : yield* openTask(ref)
  })

  return {
    open,
    take: (ref, split, count, start) => Effect.map(open(ref), (dataset) => dataset.take(split, count, start)),
    chunk: (ref, i, size) => Effect.map(open(ref), (dataset) => dataset.chunk(i, size))
  }
})
