/**
 * Everything that can keep a Hub repository from reaching the cache, as one typed error whose
 * `reason` a caller can branch on and whose message is one line naming the id and what to do.
 */
import { Schema } from "effect"

export const HubFailureReasons = [
  "repo-not-found",
  "revision-not-found",
  "file-not-found",
  "unauthorized",
  "gated",
  "unreachable",
  "not-cached",
  "pickle-only",
  "checksum-mismatch",
  "interrupted",
  "disk-full",
  "bad-response",
  "no-parquet"
] as const

export class HubError extends Schema.TaggedError<HubError>()("HubError", {
  /** The id as the user wrote it (with its revision). */
  id: Schema.String,
  reason: Schema.Literals(HubFailureReasons),
  message: Schema.String
}) {}
