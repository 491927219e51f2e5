/**
 * Learning rate: linear warmup from 0 to the peak over `warmupSteps`, then cosine decay to
 * `minLr` at `totalSteps` (PTL's recovery schedule uses 5% warmup).
 */

export interface LrSchedule {
  readonly peakLr: number
  readonly minLr: number
  readonly warmupSteps: number
  readonly totalSteps: number
}

/** Learning rate of optimizer step `step` (0-based: the first update uses step 0). */
export const learningRate = (schedule: LrSchedule, step: number): number => {
  const { peakLr, minLr, warmupSteps, totalSteps } = schedule
  if (step < warmupSteps) return (peakLr * (step + 1)) / warmupSteps
  const decaySteps = Math.max(totalSteps - warmupSteps, 1)
  const progress = Math.min((step - warmupSteps) / decaySteps, 1)
  return minLr + 0.5 * (peakLr - minLr) * (1 + Math.cos(Math.PI * progress))
}

/** The usual schedule for a budget: `warmupFraction` of the steps warm up. */
export const warmupCosine = (peakLr: number, totalSteps: number, warmupFraction = 0.05, minLrRatio = 0.1): LrSchedule => ({
  peakLr,
  minLr: peakLr * minLrRatio,
  warmupSteps: Math.max(1, Math.round(totalSteps * warmupFraction)),
  totalSteps
})
