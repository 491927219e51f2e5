/**
 * RunStore: where a run keeps what must survive it — the event log, one checkpoint per
 * accepted stage with its manifest, a pointer to each strategy's last accepted stage, the
 * resumable state of an interrupted iteration, and the result of every finished strategy. The
 * pipeline talks only to this interface; `RunStore.layerFolder` keeps it in a run folder on
 * the local file system, locked for one writer (RunStoreFolder.ts), and `RunStore.layerFenced`
 * in one on a cluster's shared directory, every write fenced (RunStoreFencing.ts).
 */
import { Context, Effect, Layer, type Option } from "effect"
import type { LoadCheckpointError, SaveCheckpointError } from "../io/Checkpoint.ts"
import type { ExtraFile } from "../io/CheckpointWriter.ts"
import type { Dtype } from "../io/Dtype.ts"
import type { FileSystemError } from "../io/Errors.ts"
import type { InvalidEventLog } from "../io/EventLog.ts"
import type { HfConfig } from "../io/HfConfig.ts"
import type { CorruptStage } from "../io/Manifest.ts"
import type { CorruptRunFile, RunLocked, RunResult } from "../io/RunFolder.ts"
import type { RunEvent, Strategy } from "../io/RunEvent.ts"
import type { NamedTensor } from "../io/Safetensors.ts"
import type { Model } from "../model/Model.ts"
import { type FenceToken, RunFence } from "./RunFence.ts"
import { fenceWrites } from "./RunStoreFencing.ts"
import { openRunStoreFolder, type RunStoreOptions } from "./RunStoreFolder.ts"

/** What a checkpoint is written from: the model and the original folder's config and files. */
export interface StageContent extends Model {
  readonly hfConfig: HfConfig
  readonly dtype: Dtype
  readonly generationConfig?: unknown
  readonly extraFiles: ReadonlyArray<ExtraFile>
}

export interface AcceptedPointer {
  /** Stage folder, relative to the run folder (e.g. "stages/ptl-003"). */
  readonly stage: string
  readonly iteration: number
  readonly strategy: Strategy
}

/** The resumable state of an interrupted iteration: a JSON value, the weights, and named tensors. */
export interface ResumeState {
  /** Where the run stands (pipeline/ResumePoint.ts); the store keeps it as given. */
  readonly info: unknown
  readonly model: StageContent
  /** Tensors besides the weights (optimizer moments), in internal orientation. */
  readonly tensors: ReadonlyArray<NamedTensor>
}

export interface LoadedResume {
  readonly info: unknown
  /** Fresh tensors; the caller owns them. */
  readonly model: Model
  readonly tensors: ReadonlyArray<NamedTensor>
}

export type StageLoadError = CorruptStage | LoadCheckpointError

export type StageSaveError = SaveCheckpointError

export class RunStore extends Context.Service<RunStore, {
  /** The run folder. */
  readonly dir: string
  /** Appends one event (seq and time filled in) and makes it durable. */
  readonly appendEvent: (event: Omit<RunEvent, "seq" | "time">) => Effect.Effect<RunEvent, FileSystemError>
  /** The events so far (a torn last line from a crash is dropped). */
  readonly events: Effect.Effect<ReadonlyArray<RunEvent>, FileSystemError | InvalidEventLog>
  /** Writes stage `name` (a checkpoint and its manifest) atomically; returns its relative path. */
  readonly saveStage: (name: string, content: StageContent) => Effect.Effect<string, StageSaveError>
  /** Loads a stage after verifying its manifest; the caller owns the tensors. */
  readonly loadStage: (stage: string) => Effect.Effect<Model, StageLoadError>
  /** Records `pointer` as its strategy's last accepted stage. */
  readonly markAccepted: (pointer: AcceptedPointer) => Effect.Effect<void, FileSystemError | CorruptRunFile>
  /** Each strategy's last accepted stage. */
  readonly accepted: Effect.Effect<ReadonlyMap<Strategy, AcceptedPointer>, FileSystemError | CorruptRunFile>
  readonly saveResume: (state: ResumeState) => Effect.Effect<string, StageSaveError>
  readonly loadResume: Effect.Effect<Option.Option<LoadedResume>, StageLoadError | CorruptRunFile>
  readonly clearResume: Effect.Effect<void, FileSystemError>
  /** Records a finished strategy in result.json, beside the others. */
  readonly recordResult: (strategy: Strategy, result: RunResult["strategies"][string]) => Effect.Effect<void, FileSystemError | CorruptRunFile>
}>()("simmer/RunStore") {
  /** The store of an existing run folder (created by io/RunFolder.createRunFolder), locked for this process while the layer lives. */
  static readonly layerFolder = (
    dir: string,
    options: RunStoreOptions = {}
  ): Layer.Layer<RunStore, FileSystemError | RunLocked | InvalidEventLog> => Layer.effect(RunStore, openRunStoreFolder(dir, options))

  /**
   * The run folder `dir` on the shared directory, fenced by `token`, without its lock file (which
   * cannot tell whether another host's process lives). Another backend (an object store) would be
   * fenced the same way, with `fenceWrites`.
   */
  static readonly layerFenced = (dir: string, token: FenceToken): Layer.Layer<RunStore, FileSystemError | RunLocked | InvalidEventLog, RunFence> =>
    Layer.effect(
      RunStore,
      Effect.gen(function*() {
        const store = yield* openRunStoreFolder(dir, { lock: "none" })
        return fenceWrites(store, yield* RunFence, token)
      })
    )
}
