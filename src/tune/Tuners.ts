/**
 * The tuners a plan can name, by kind: the plan's `tuner:` schema (the union of every kind's
 * settings) and the one place that maps an entry to its implementation. A program embedding
 * simmer can also hand its own Tuner to the loop directly.
 */
import { SftConfig, sftTuner } from "./Sft.ts"

export const TunerConfig = SftConfig
export type TunerConfig = typeof TunerConfig.Type

export const tunerFor = (config: TunerConfig) => {
  switch (config.kind) {
    case "sft":
    case "cpt":
      return sftTuner(config)
  }
}
