/**
 * Datasets: where the pipeline gets examples, so it never opens files itself. A dataset is named
 * by a `DatasetRef` — a built-in task with its knobs and seed, or a JSONL file — and opened into
 * a `Dataset` with three disjoint splits. `Datasets.layer` holds them in memory (DatasetsInMemory.ts).
 *
 *   { task: "arith", digits: 3, maxSteps: 3, seed: 1 }
 *   { file: "data/gsm8k-train.jsonl", skipInvalid: true }
 *   { hub: "openai/gsm8k", config: "main", split: "train" }
 */
import type { Effect, Stream } from "effect"
import { Context, Layer, Schema } from "effect"
import type { HubError } from "../hub/HubError.ts"
import { parseHubId } from "../hub/HubId.ts"
import type { InvalidTaskKnobs } from "../tasks/Builtin.ts"
import { TaskRef } from "../tasks/Builtin.ts"
import type { DatasetFormat, EmptyDataset, JsonlError } from "../tasks/Jsonl.ts"
import type { Example, Grader, Split } from "../tasks/Task.ts"
import { makeDatasetsInMemory } from "./DatasetsInMemory.ts"

/**
 * A JSONL file (see src/tasks/Jsonl.ts for the three line shapes). `splitBy: "hash"` (the
 * default) divides the file into train / calibration / test by hashing each prompt (80/10/10,
 * the same rule as the built-ins), so one file can serve every role without leaking test
 * prompts into training; `"none"` gives every split the whole file, for a file that already is
 * one split (e.g. GSM8K's test.jsonl used only for evaluation).
 */
export const FileRef = Schema.Struct({
  file: Schema.NonEmptyString,
  skipInvalid: Schema.optionalKey(Schema.Boolean),
  splitBy: Schema.optionalKey(Schema.Literals(["hash", "none"]))
})
export type FileRef = typeof FileRef.Type

/**
 * A dataset on the Hugging Face Hub, read from its Parquet files (see src/hub/HubDataset.ts):
 * the repository (`org/name`, optionally `@revision`), its config and split as
 * `datasets.load_dataset` names them, at most `limit` rows, and `columns` mapping simmer's record
 * fields onto the dataset's columns when they are named otherwise. A named split is used whole
 * for every role (`splitBy: none`); without one, every row is divided by hash as a file is.
 */
export const HubDatasetRef = Schema.Struct({
  hub: Schema.String.check(Schema.makeFilter((id: string) => parseHubId(id) !== undefined || "Expected a Hub dataset id, org/name or org/name@revision")),
  config: Schema.optionalKey(Schema.NonEmptyString),
  split: Schema.optionalKey(Schema.NonEmptyString),
  limit: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThan(0))),
  columns: Schema.optionalKey(Schema.Struct({
    question: Schema.optionalKey(Schema.NonEmptyString),
    answer: Schema.optionalKey(Schema.NonEmptyString),
    prompt: Schema.optionalKey(Schema.NonEmptyString),
    completion: Schema.optionalKey(Schema.NonEmptyString),
    text: Schema.optionalKey(Schema.NonEmptyString)
  })),
  skipInvalid: Schema.optionalKey(Schema.Boolean),
  splitBy: Schema.optionalKey(Schema.Literals(["hash", "none"]))
})
export type HubDatasetRef = typeof HubDatasetRef.Type

export const DatasetRef = Schema.Union([TaskRef, FileRef, HubDatasetRef])
export type DatasetRef = typeof DatasetRef.Type

/** An opened dataset. Every method is pure: built-ins generate on demand, files are already validated and in memory. */
export interface Dataset {
  /** The task name or the file path. */
  readonly name: string
  /** arith is question-answer (GSM8K-style), program is prompt-completion, general is text. */
  readonly format: DatasetFormat
  /** How to grade completions; `undefined` for text, which is for perplexity and calibration only. */
  readonly grader: Grader | undefined
  /** Lines of the file skipped as invalid (with `skipInvalid`); 0 for built-ins. */
  readonly skipped: number
  /** Examples in `split`; `undefined` when unbounded (every split of a built-in task). */
  readonly size: (split: Split) => number | undefined
  /** Examples `start .. start + count - 1` of `split` (fewer if a file's split ends first). */
  readonly take: (split: Split, count: number, start?: number) => ReadonlyArray<Example>
  /**
   * The fresh training chunk for loop iteration `i`: train examples `i*size .. (i+1)*size - 1`.
   * A file's train split is cycled when the loop outruns it.
   */
  readonly chunk: (i: number, size: number) => ReadonlyArray<Example>
  /** All of `split` in order (unbounded for built-ins: use `Stream.take`). */
  readonly stream: (split: Split) => Stream.Stream<Example>
}

export type DatasetError = JsonlError | EmptyDataset | InvalidTaskKnobs | HubError

export class Datasets extends Context.Service<Datasets, {
  /** Opens (reads and validates, for a file) the dataset a reference names; files are read once and cached. */
  readonly open: (ref: DatasetRef) => Effect.Effect<Dataset, DatasetError>
  /** `count` examples of `split` from `start` (shorthand for `open` then `take`). */
  readonly take: (
    ref: DatasetRef,
    split: Split,
    count: number,
    start?: number
  ) => Effect.Effect<ReadonlyArray<Example>, DatasetError>
  /** The training chunk for loop iteration `i` (shorthand for `open` then `chunk`). */
  readonly chunk: (ref: DatasetRef, i: number, size: number) => Effect.Effect<ReadonlyArray<Example>, DatasetError>
}>()("simmer/Datasets") {
  /** Built-in tasks generated on demand, files and Hub datasets read once and cached for the life of the layer. */
  static readonly layer: Layer.Layer<Datasets> = Layer.effect(Datasets, makeDatasetsInMemory)
}

