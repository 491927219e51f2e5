/**
 * Where an interrupted iteration continues, as saved in a run folder's resume/state.json: the
 * strategy, iteration, attempt and pruning goal, which tuner of the plan's list was running (the
 * list's length: tuning was done and evaluation comes next) and that tuner's own saved state,
 * which only the tuner decodes. The weights and the tuner's tensors are saved beside it.
 *
 * It also keeps what the iteration had recorded so far — the candidate's timings, pruning and
 * last tuning, and the steps, tokens, losses and measurements of the tuning in progress — so the
 * events a resumed iteration logs equal those of an iteration never interrupted.
 */
import { Result, Schema } from "effect"
import { RunEvent, Strategy } from "../io/RunEvent.ts"
import { Unit } from "./Plan.ts"

/** The tuning in progress as far as it went: what its `tuned` event will count. */
export const TuningSoFar = Schema.Struct({
  losses: Schema.Array(Schema.Number),
  tokens: Schema.Int,
  metrics: Schema.Record(Schema.String, Schema.Array(Schema.Number)),
  /** Seconds it had taken. */
  seconds: Schema.Number
})
export type TuningSoFar = typeof TuningSoFar.Type

/** What the interrupted iteration had recorded: the candidate state's timings, pruning and last finished tuning, and the tuning in progress. */
export const IterationRecord = Schema.Struct({
  timings: RunEvent.fields.timings,
  pruned: RunEvent.fields.pruned,
  tune: RunEvent.fields.tune,
  tuning: Schema.optionalKey(TuningSoFar)
})
export type IterationRecord = typeof IterationRecord.Type

export const ResumeInfo = Schema.Struct({
  format: Schema.Literal("simmer-resume-v2"),
  strategy: Strategy,
  iteration: Schema.Int,
  attempt: Schema.Int,
  goal: Schema.Array(Schema.Tuple([Unit, Schema.Array(Schema.Int)])),
  /** Position in the plan's tuner list to continue at. */
  tuner: Schema.Int,
  /** The running tuner's kind (for people reading the file) and its encoded state; absent when it had not started. */
  tunerKind: Schema.optionalKey(Schema.String),
  tunerState: Schema.optionalKey(Schema.Unknown),
  /** Absent in state an older simmer saved: the resumed iteration then records only what it did itself. */
  record: Schema.optionalKey(Schema.toCodecJson(IterationRecord))
})
export type ResumeInfo = typeof ResumeInfo.Type

/** What simmer 0.1 saved before tuners were pluggable: always SFT, the trainer's step and cursor. */
const LegacyResumeInfo = Schema.Struct({
  strategy: Strategy,
  iteration: Schema.Int,
  attempt: Schema.Int,
  goal: Schema.Array(Schema.Tuple([Unit, Schema.Array(Schema.Int)])),
  step: Schema.Int,
  cursor: Schema.Unknown
})

const decodeCurrent = Schema.decodeUnknownResult(ResumeInfo)
const decodeLegacy = Schema.decodeUnknownResult(LegacyResumeInfo)

export const encodeResumeInfo = Schema.encodeSync(ResumeInfo)

/** The saved resume point, or undefined when the value is not one. */
export const decodeResumeInfo = (value: unknown): ResumeInfo | undefined => {
  const current = decodeCurrent(value)
  if (Result.isSuccess(current)) return current.success
  const legacy = decodeLegacy(value)
  if (Result.isFailure(legacy)) return undefined
  const { step, cursor, ...where } = legacy.success
  return { format: "simmer-resume-v2", ...where, tuner: 0, tunerState: { step, cursor } }
}
