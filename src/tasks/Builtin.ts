/**
 * The built-in tasks by name: a reference to one (`{ task: "arith", digits: 3, seed: 7 }`) as a
 * Schema, so plans can name tasks and their knobs in JSON or YAML, and the task it denotes.
 */
import { Schema } from "effect"
import { arith, ArithKnobs, arithKnobsProblem, resolveArithKnobs } from "./Arith.ts"
import { general, GeneralKnobs, generalKnobsProblem, resolveGeneralKnobs } from "./General.ts"
import { program, ProgramKnobs, programKnobsProblem, resolveProgramKnobs } from "./Program.ts"
import type { Task } from "./Task.ts"

/** The knobs of a reference: everything but `task` and `seed`. */
const knobsOf = <R extends { readonly task: string; readonly seed?: number }>(ref: R): Omit<R, "task" | "seed"> => {
  const { task: _task, seed: _seed, ...knobs } = ref
  return knobs
}

const seed = Schema.optionalKey(Schema.Int)

export const ArithRef = Schema.Struct({ task: Schema.Literal("arith"), seed, ...ArithKnobs.fields }).check(
  Schema.makeFilter((ref) => arithKnobsProblem(resolveArithKnobs(knobsOf(ref))) ?? true)
)
export const ProgramRef = Schema.Struct({ task: Schema.Literal("program"), seed, ...ProgramKnobs.fields }).check(
  Schema.makeFilter((ref) => programKnobsProblem(resolveProgramKnobs(knobsOf(ref))) ?? true)
)
export const GeneralRef = Schema.Struct({ task: Schema.Literal("general"), seed, ...GeneralKnobs.fields }).check(
  Schema.makeFilter((ref) => generalKnobsProblem(resolveGeneralKnobs(knobsOf(ref))) ?? true)
)

/** A built-in task with its knobs (all optional, defaults per task) and seed (default 0). */
export const TaskRef = Schema.Union([ArithRef, ProgramRef, GeneralRef])
export type TaskRef = typeof TaskRef.Type

/** Knobs that break a cross-field rule (e.g. minSteps > maxSteps) when given unchecked. */
export class InvalidTaskKnobs extends Schema.TaggedError<InvalidTaskKnobs>()("InvalidTaskKnobs", {
  task: Schema.String,
  issue: Schema.String
}) {
  override get message() {
    return `Invalid knobs for built-in task ${this.task}: ${this.issue}.`
  }
}

/** The task a reference denotes; throws `RangeError` on knobs the schema would have rejected. */
export const builtinTask = (ref: TaskRef): Task<object> => {
  switch (ref.task) {
    case "arith":
      return arith(knobsOf(ref), ref.seed ?? 0)
    case "program":
      return program(knobsOf(ref), ref.seed ?? 0)
    case "general":
      return general(knobsOf(ref), ref.seed ?? 0)
  }
}
