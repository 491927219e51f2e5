/**
 * RunStore: where a run keeps what must survive it — the event log, one checkpoint per
 * accepted stage with its manifest, the pointer to the last accepted stage, and the resumable
 * state of an interrupted stage. The pipeline talks only to this interface; layers/RunStore.ts
 * keeps it in a run folder on the local file system.
 */
import { Context, type Effect, type Option } from "effect"
import type { ExtraFile, LoadCheckpointError, SaveCheckpointError } from "../io/Checkpoint.ts"
import type { Dtype } from "../io/Dtype.ts"
import type { FileSystemError } from "../io/Errors.ts"
import type { HfConfig } from "../io/HfConfig.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import type { InvalidEventLog } from "../io/EventLog.ts"
import type { CorruptStage } from "../io/Manifest.ts"
import type { RunEvent } from "../io/RunEvent.ts"

/** What a checkpoint is written from: the model and the original folder's config and files. */
export interface StageContent {
  readonly config: ModelConfig
  readonly params: Params
  readonly hfConfig: HfConfig
  readonly dtype: Dtype
  readonly generationConfig?: unknown
  readonly extraFiles: ReadonlyArray<ExtraFile>
}

export interface AcceptedPointer {
  /** Stage folder, relative to the run folder (e.g. "stages/003"). */
  readonly stage: string
  readonly iteration: number
  readonly strategy: string
}

/** The resumable state of an interrupted stage: JSON-safe fields plus named float tensors. */
export interface ResumeState {
  readonly info: Readonly<Record<string, unknown>>
  readonly model: StageContent
  /** Extra tensors (optimizer moments), in internal orientation. */
  readonly tensors: ReadonlyArray<{ readonly name: string; readonly shape: ReadonlyArray<number>; readonly data: Float32Array }>
}

export interface LoadedResume {
  readonly info: Readonly<Record<string, unknown>>
  readonly config: ModelConfig
  readonly params: Params
  readonly tensors: ReadonlyMap<string, { readonly shape: ReadonlyArray<number>; readonly data: Float32Array }>
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
  /** Loads a stage after verifying its manifest. */
  readonly loadStage: (stage: string) => Effect.Effect<{ config: ModelConfig; params: Params }, StageLoadError>
  readonly markAccepted: (pointer: AcceptedPointer) => Effect.Effect<void, FileSystemError>
  readonly accepted: Effect.Effect<Option.Option<AcceptedPointer>, FileSystemError>
  readonly saveResume: (state: ResumeState) => Effect.Effect<string, StageSaveError>
  readonly loadResume: Effect.Effect<Option.Option<LoadedResume>, StageLoadError>
  readonly clearResume: Effect.Effect<void, FileSystemError>
}>()("simmer/RunStore") {}
