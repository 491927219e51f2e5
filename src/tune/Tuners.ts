/**
 * The tuners a plan can name, by kind: the plan's `tuner:` schema (the union of every kind's
 * settings) and the one place that maps an entry to its implementation. A program embedding
 * simmer can also hand its own Tuner to the loop directly.
 */
import { Schema } from "effect"
import type { Gradients } from "../services/Gradients.ts"
import type { RewardError, RewardModel } from "../services/RewardModel.ts"
import { adapterTuner, type AdapterTuningError } from "./AdapterTuning.ts"
import { DistillConfig, type DistillError, distillTuner } from "./Distill.ts"
import { GrpoConfig, type GrpoError, grpoTuner } from "./Grpo.ts"
import { SftConfig, type SftError, sftTuner } from "./Sft.ts"
import type { Tuner } from "./Tuner.ts"

export const TunerConfig = Schema.Union([SftConfig, GrpoConfig, DistillConfig])
export type TunerConfig = typeof TunerConfig.Type

/** What the plan's tuners can fail with, and the services they need (gradients for SFT, the reward for GRPO). */
export type TunerError = SftError | AdapterTuningError | GrpoError<RewardError> | DistillError
export type TunerRequirements = Gradients | RewardModel

export const tunerFor = (config: TunerConfig): Tuner<TunerError, TunerRequirements> => {
  switch (config.kind) {
    case "sft":
    case "cpt":
      return config.adapter !== undefined ? adapterTuner(config, config.adapter) : sftTuner(config)
    case "grpo":
      return grpoTuner(config)
    case "distill":
      return distillTuner(config)
  }
}
