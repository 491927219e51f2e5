/**
 * The tuners a plan can name, by kind: the plan's `tuner:` schema (the union of every kind's
 * settings) and the one place that maps an entry to its implementation. A program embedding
 * simmer can also hand its own Tuner to the loop directly.
 */
import type { Gradients } from "../services/Gradients.ts"
import { adapterTuner, type AdapterTuningError } from "./AdapterTuning.ts"
import { SftConfig, type SftError, sftTuner } from "./Sft.ts"
import type { Tuner } from "./Tuner.ts"

export const TunerConfig = SftConfig
export type TunerConfig = typeof TunerConfig.Type

export type TunerError = SftError | AdapterTuningError

export const tunerFor = (config: TunerConfig): Tuner<TunerError, Gradients> => {
  switch (config.kind) {
    case "sft":
    case "cpt":
      return config.adapter !== undefined ? adapterTuner(config, config.adapter) : sftTuner(config)
  }
}
