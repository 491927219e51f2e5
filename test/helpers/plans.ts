/**
 * Plans tests share. `unreachablePlan`: the bundled model (which can add) cut to 25% of its size
 * (a share its units can reach, so the plan checks valid) in one step cannot keep 90% of its arithmetic, and no smaller retry is allowed, so the gate
 * fails every time: a run that stops short of its target, or fails with GateFailed.
 */
export const unreachablePlan = (onFailure: "stop" | "fail") => `
model: base
target: { parameters: 0.25 }
iterations: 1
scorer: activation
data: { tune: [{ task: arith }], calibration: [{ task: arith }], evaluate: [{ task: arith }], calibrationExamples: 4, evaluationExamples: 8 }
tuner: { steps: 1, batchSize: 2, maxSeqLen: 48 }
gates: { accuracyRetained: 0.9, retries: 0, onFailure: ${onFailure} }
backend: cpu
`
