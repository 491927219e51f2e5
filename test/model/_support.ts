/** Setups the model tests share (and the webgpu parity test reuses). */
import * as tf from "@tensorflow/tfjs"
import { type Adapters, type AdapterSpec, adapterTensors, disposeAdapters, initAdapters, withTensors } from "../../src/model/Adapters.ts"
import type { ModelConfig } from "../../src/model/ModelConfig.ts"

/** Adapters with b drawn at random too, so every adapter tensor affects the output. */
export const liveAdapters = (config: ModelConfig, spec: AdapterSpec, seed: number): Adapters => {
  const fresh = initAdapters(config, spec, seed)
  const tensors = adapterTensors(fresh).map(({ name, tensor }) =>
    name.endsWith("lora_b") ? tf.randomNormal(tensor.shape, 0, 0.3, "float32", seed) : tf.clone(tensor))
  disposeAdapters(fresh)
  return withTensors(fresh, tensors)
}
