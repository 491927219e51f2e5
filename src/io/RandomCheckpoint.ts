/**
 * A randomly initialised checkpoint of any config, written tensor by tensor in the exact
 * Hugging Face layout (config.json, shards with model.safetensors.index.json or one
 * model.safetensors, the dtype asked for), so that real sizes can be loaded, pruned and measured
 * without downloading weights. Weights are drawn as transformers initialises them (normal with
 * the config's initializer_range, norms at one, biases at zero) from a generator seeded per
 * tensor, so the same seed gives the same bytes and no tensor waits for another.
 */
import { Effect } from "effect"
import { Rng } from "../model/Rng.ts"
import { paramSpecs } from "../model/Params.ts"
import { type ExtraFile, saveCheckpointTensors } from "./CheckpointWriter.ts"
import type { Dtype } from "./Dtype.ts"
import type { HfConfig } from "./HfConfig.ts"
import { decodeHfConfig, toModelConfig } from "./HfConfig.ts"

export interface RandomCheckpointOptions {
  readonly seed?: number
  /** Default BF16, as the published checkpoints. */
  readonly dtype?: Dtype
  /** Default 5 GB (transformers' default: one file up to that size). */
  readonly maxShardBytes?: number
  /** Tokenizer files and the like to put beside the weights. */
  readonly extraFiles?: ReadonlyArray<ExtraFile>
  readonly onTensor?: (name: string, done: number, total: number) => void
}

export const writeRandomCheckpoint = Effect.fn("RandomCheckpoint.write")(function*(
  dir: string,
  hfConfig: HfConfig,
  options: RandomCheckpointOptions = {}
) {
  const checked = yield* decodeHfConfig(hfConfig, `${dir}/config.json`)
  const config = toModelConfig(checked)
  const std = typeof checked.initializer_range === "number" ? checked.initializer_range : 0.02
  const seed = options.seed ?? 0
  const index = new Map(paramSpecs(config).map((spec, i) => [spec.name, i]))
  return yield* saveCheckpointTensors(dir, {
    config,
    hfConfig: checked,
    dtype: options.dtype ?? "BF16",
    ...(options.maxShardBytes !== undefined ? { maxShardBytes: options.maxShardBytes } : {}),
    ...(options.extraFiles !== undefined ? { extraFiles: options.extraFiles } : {}),
    ...(options.onTensor !== undefined ? { onTensor: options.onTensor } : {}),
    tensor: (spec) =>
      Effect.sync(() => randomTensorValues(spec.name, spec.shape.reduce((a, b) => a * b, 1), std, seed * 1_000_003 + index.get(spec.name)!))
  })
})

/**
 * One tensor's values as transformers initialises them: norms at one, biases at zero, the rest
 * normal with standard deviation `std`, drawn from a generator seeded with `tensorSeed` alone
 * (the same bytes whatever else is drawn). Also for models that never touch the disk
 * (bench/prefill.ts builds ONNX sessions of real shapes from it).
 */
export const randomTensorValues = (name: string, size: number, std: number, tensorSeed: number): Float32Array => {
  const values = new Float32Array(size)
  if (name.endsWith("norm.weight")) values.fill(1)
  else if (!name.endsWith(".bias")) {
    const rng = Rng.seeded(tensorSeed)
    for (let i = 0; i < values.length; i++) values[i] = rng.normal() * std
  }
  return values
}
