/**
 * A dataset by Hub id, read from its Parquet files (the Hub's format for datasets) with
 * `hyparquet`. A reference names the repository (optionally `@revision`), its config and split,
 * as `datasets.load_dataset` does; the files of that config and split are fetched into the cache
 * and their rows mapped onto the three record shapes simmer grades:
 *
 *   { hub: openai/gsm8k, config: main, split: train }            question / answer columns
 *   { hub: org/code, split: test, columns: { prompt: text, completion: code } }
 *
 * Parquet files are found where the Hub puts them: `<config>/<split>-NNNNN-of-NNNNN.parquet`,
 * `data/<split>-*.parquet` (the default config) or `<config>/<split>/NNNN.parquet` (the Hub's
 * Parquet conversion).
 */
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet"
import { compressors } from "hyparquet-compressors"
import { join } from "node:path"
import { Effect, Result } from "effect"
import type { HubDatasetRef } from "../services/Datasets.ts"
import { decodeRecordValue, DatasetReadError, EmptyDataset, formatOf, InvalidDatasetLine, type JsonlFile, type JsonlRecord } from "../tasks/Jsonl.ts"
import { HubError } from "./HubError.ts"
import { formatHubId, parseHubId } from "./HubId.ts"
import { fetchSnapshot, type FileSelection } from "./HubSnapshot.ts"

const parquet = /\.parquet$/

/** The config a Parquet file belongs to: its first folder, except the default config's `data/`. */
const configOf = (path: string): string => {
  const parts = path.split("/")
  return parts.length < 2 || parts[0] === "data" ? "default" : parts[0]
}

/** The split a Parquet file holds: a folder named after it, or a file name starting with it. */
const splitOf = (path: string): string => {
  const parts = path.split("/")
  const inFolder = parts.length >= 3 ? parts[parts.length - 2] : undefined
  return inFolder ?? parts[parts.length - 1].replace(parquet, "").split(/[-_.]/)[0]
}

/** The Parquet files of one config and split (every split when none is named). */
export const parquetFiles = (config: string | undefined, split: string | undefined) => (paths: ReadonlyArray<string>): FileSelection => {
  const files = paths.filter((p) => parquet.test(p)).sort()
  if (files.length === 0) return { refused: "no-parquet", message: "the dataset has no Parquet files, so simmer cannot read it." }
  const configs = [...new Set(files.map(configOf))]
  const chosen = config ?? (configs.length === 1 ? configs[0] : undefined)
  if (chosen === undefined) return { refused: "no-parquet", message: `the dataset has several configs (${configs.join(", ")}): add config: to the reference.` }
  const ofConfig = files.filter((p) => configOf(p) === chosen)
  if (ofConfig.length === 0) return { refused: "no-parquet", message: `the dataset has no config "${chosen}"; its configs: ${configs.join(", ")}.` }
  if (split === undefined) return ofConfig
  const ofSplit = ofConfig.filter((p) => splitOf(p) === split)
  if (ofSplit.length > 0) return ofSplit
  const splits = [...new Set(ofConfig.map(splitOf))]
  return { refused: "no-parquet", message: `config "${chosen}" has no split "${split}"; its splits: ${splits.join(", ")}.` }
}

/** How a reference names its data in messages: `openai/gsm8k@<sha> (main/train)`. */
export const describeHubDataset = (ref: HubDatasetRef): string => {
  const part = [ref.config, ref.split].filter((p) => p !== undefined).join("/")
  return part === "" ? ref.hub : `${ref.hub} (${part})`
}

/** A row with its columns renamed as the reference's `columns:` asks (simmer's field → the dataset's column). */
const mapColumns = (row: Record<string, unknown>, columns: HubDatasetRef["columns"]): Record<string, unknown> => {
  if (columns === undefined) return row
  const mapped: Record<string, unknown> = { ...row }
  for (const [field, column] of Object.entries(columns)) if (column !== undefined) mapped[field] = row[column]
  return mapped
}

/** The rows of a Hub dataset as validated records, in file order, at most `limit`. */
export const loadHubDataset = Effect.fn("Hub.loadDataset")(function*(ref: HubDatasetRef) {
  const id = parseHubId(ref.hub)
  if (id === undefined) return yield* new HubError({ id: ref.hub, reason: "repo-not-found", message: `${ref.hub} is not a Hub dataset id (org/name[@revision]).` })
  const snapshot = yield* fetchSnapshot({ kind: "dataset", id, select: parquetFiles(ref.config, ref.split) })
  const label = describeHubDataset({ ...ref, hub: `${id.repo}@${snapshot.commit.slice(0, 12)}` })
  const records: Array<JsonlRecord> = []
  const skipped: Array<InvalidDatasetLine> = []
  let row = 0
  for (const file of snapshot.files) {
    if (ref.limit !== undefined && records.length >= ref.limit) break
    const where = `${formatHubId({ repo: id.repo, revision: snapshot.commit })} ${file}`
    const rows = yield* Effect.tryPromise({
      try: async () => parquetReadObjects({ file: await asyncBufferFromFile(join(snapshot.dir, file)), compressors }),
      catch: (cause) => new DatasetReadError({ file: where, reason: cause instanceof Error ? cause.message : String(cause) })
    })
    for (const value of rows) {
      if (ref.limit !== undefined && records.length >= ref.limit) break
      row++
      const decoded = decodeRecordValue(mapColumns(value, ref.columns))
      const first = records[0]
      const issue = Result.isFailure(decoded)
        ? decoded.failure
        : first !== undefined && formatOf(first.record) !== formatOf(decoded.success)
        ? "a row of another shape than the first (a dataset holds one)"
        : undefined
      if (issue === undefined && Result.isSuccess(decoded)) records.push({ line: row, record: decoded.success })
      else if (ref.skipInvalid === true) skipped.push(new InvalidDatasetLine({ file: where, line: row, issue: `row ${row}: ${issue}` }))
      else {
        return yield* new InvalidDatasetLine({
          file: where,
          line: row,
          issue: `${issue}; map its columns with columns: { question: ..., answer: ... } (or prompt/completion, or text)`
        })
      }
    }
  }
  if (records.length === 0) return yield* new EmptyDataset({ file: label, skipped: skipped.length })
  return { file: label, format: formatOf(records[0].record), records, skipped } satisfies JsonlFile
})
