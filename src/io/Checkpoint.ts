/**
 * What a Hugging Face checkpoint folder is to simmer once opened: its files, its config and
 * kind, and its tensors (all loaded, or read on demand), as CheckpointReader hands them out and
 * CheckpointWriter takes them back. The folder's layout is CheckpointLayout.
 */
import type * as tf from "@tensorflow/tfjs"
import type { Effect } from "effect"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import type { Dtype } from "./Dtype.ts"
import type { CheckpointNotFound, CorruptCheckpoint, FileSystemError, InvalidConfig, TargetExists, TensorMismatch, UnsupportedDtype, UnsupportedModel } from "./Errors.ts"
import type { HfConfig, ModelKind } from "./HfConfig.ts"

export interface CheckpointFiles {
  readonly dir: string
  readonly config: string
  /** The safetensors files the weights were read from. */
  readonly weights: ReadonlyArray<string>
  readonly index: string | undefined
  readonly generationConfig: string | undefined
  /** Tokenizer files present in the folder (see `tokenizerFileNames`), to copy along on save. */
  readonly tokenizer: ReadonlyArray<string>
}

/** A checkpoint folder whose headers are validated and whose tensors are read on demand. */
export interface LazyCheckpoint extends Omit<LoadedCheckpoint, "params" | "scoreHead"> {
  /** A tensor by Hugging Face name, float32 in file orientation (BF16 / F16 decoded). */
  readonly read: (name: string) => Effect.Effect<Float32Array, CorruptCheckpoint | FileSystemError>
  /** Rows [first, first + count) of a tensor (along its first axis), in file orientation. */
  readonly readRows: (name: string, first: number, count: number) => Effect.Effect<Float32Array, CorruptCheckpoint | FileSystemError>
  /** A parameter in internal orientation (Linear weights transposed to [in, out]), as Params hold it. */
  readonly readInternal: (name: string) => Effect.Effect<Float32Array, CorruptCheckpoint | FileSystemError>
}

export interface LoadedCheckpoint {
  readonly config: ModelConfig
  /** The config.json as read, to write back with `saveCheckpoint`. */
  readonly hfConfig: HfConfig
  /** A causal LM, or a sequence classifier (reward model) whose head is `scoreHead`. */
  readonly kind: ModelKind
  /**
   * Fresh tensors in internal orientation; the caller owns (and disposes) them. A sequence
   * classifier's params have no `lmHead` (release them with `disposeCheckpoint`).
   */
  readonly params: Params
  /** Sequence classifiers only: `score.weight` in internal orientation, [hidden, num_labels]. */
  readonly scoreHead?: tf.Tensor2D
  /** The on-disk dtype; when tensors mix dtypes, the one holding most parameters. */
  readonly dtype: Dtype
  /** generation_config.json content, if the folder has one. */
  readonly generationConfig: unknown
  readonly files: CheckpointFiles
}

export type LoadCheckpointError =
  | CheckpointNotFound
  | InvalidConfig
  | UnsupportedModel
  | UnsupportedDtype
  | CorruptCheckpoint
  | TensorMismatch
  | FileSystemError

export type SaveCheckpointError = UnsupportedModel | TensorMismatch | FileSystemError | TargetExists
