/**
 * What a run records about each Hub id its plan names: the commit the id's revision pointed at
 * when the run started. Resume, the daemon and the report read these, so a run continues on
 * exactly the files it started with, even after the branch moves.
 */
import { Schema } from "effect"

export const HubPin = Schema.Struct({
  kind: Schema.Literals(["model", "dataset"]),
  /** The id as the plan writes it (`org/name` or `org/name@revision`). */
  id: Schema.String,
  commit: Schema.String
})
export type HubPin = typeof HubPin.Type
