/**
 * The built-in tasks by name: a reference to one (`{ task: "arith", digits: 3, seed: 7 }`) as a
 * Schema, so plans can name tasks and their knobs in JSON or YAML, and the task it denotes.
 */
import { Schema } from "effect"
import { arith, ArithKnobs, arithKnobsProblem, resolveArithKnobs } from "./Arith.ts"
import { general, GeneralKnobs, generalKnobsProblem, resolveGeneralKnobs } from "./General.ts"
import { program, ProgramKnobs, programKnobsProblem, resolveProgramKnobs } from "./Program.ts"
import { compare, CompareKnobs } from "./Compare.ts"
import { count, CountKnobs, countKnobsProblem, resolveCountKnobs } from "./Count.ts"
import { lookup, LookupKnobs, lookupKnobsProblem, resolveLookupKnobs } from "./Lookup.ts"
import { resolveReverseKnobs, reverse, ReverseKnobs, reverseKnobsProblem } from "./Reverse.ts"
import { resolveSortKnobs, sort, SortKnobs, sortKnobsProblem } from "./Sort.ts"
import { units, UnitsKnobs } from "./Units.ts"
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
export const SortRef = Schema.Struct({ task: Schema.Literal("sort"), seed, ...SortKnobs.fields }).check(
  Schema.makeFilter((ref) => sortKnobsProblem(resolveSortKnobs(knobsOf(ref))) ?? true)
)
export const ReverseRef = Schema.Struct({ task: Schema.Literal("reverse"), seed, ...ReverseKnobs.fields }).check(
  Schema.makeFilter((ref) => reverseKnobsProblem(resolveReverseKnobs(knobsOf(ref))) ?? true)
)
export const CountRef = Schema.Struct({ task: Schema.Literal("count"), seed, ...CountKnobs.fields }).check(
  Schema.makeFilter((ref) => countKnobsProblem(resolveCountKnobs(knobsOf(ref))) ?? true)
)
export const CompareRef = Schema.Struct({ task: Schema.Literal("compare"), seed, ...CompareKnobs.fields })
export const LookupRef = Schema.Struct({ task: Schema.Literal("lookup"), seed, ...LookupKnobs.fields }).check(
  Schema.makeFilter((ref) => lookupKnobsProblem(resolveLookupKnobs(knobsOf(ref))) ?? true)
)
export const UnitsRef = Schema.Struct({ task: Schema.Literal("units"), seed, ...UnitsKnobs.fields })

/** A built-in task with its knobs (all optional, defaults per task) and seed (default 0). */
export const TaskRef = Schema.Union([ArithRef, ProgramRef, SortRef, ReverseRef, CountRef, CompareRef, LookupRef, UnitsRef, GeneralRef])
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
    case "sort":
      return sort(knobsOf(ref), ref.seed ?? 0)
    case "reverse":
      return reverse(knobsOf(ref), ref.seed ?? 0)
    case "count":
      return count(knobsOf(ref), ref.seed ?? 0)
    case "compare":
      return compare(knobsOf(ref), ref.seed ?? 0)
    case "lookup":
      return lookup(knobsOf(ref), ref.seed ?? 0)
    case "units":
      return units(knobsOf(ref), ref.seed ?? 0)
    case "general":
      return general(knobsOf(ref), ref.seed ?? 0)
  }
}
