/**
 * The typed errors of checkpoint, config and tokenizer I/O.
 *
 * Every error carries the `path` it is about and a `message` that is one paragraph naming
 * that file and what is wrong with it, because these messages end up verbatim in front of
 * a user (CLI output, run logs) who has to fix the file without reading our code.
 */
import { Schema, SchemaIssue } from "effect"

/** The folder or a file it must contain does not exist (or is not what it should be). */
export class CheckpointNotFound extends Schema.TaggedError<CheckpointNotFound>()("CheckpointNotFound", {
  path: Schema.String,
  message: Schema.String
}) {}

/** config.json is not JSON, or fails the config Schema (the message lists every path). */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  path: Schema.String,
  message: Schema.String
}) {}

/** A well-formed model that simmer cannot represent: another architecture, activation, RoPE scaling, ... */
export class UnsupportedModel extends Schema.TaggedError<UnsupportedModel>()("UnsupportedModel", {
  path: Schema.String,
  message: Schema.String
}) {}

/** A tensor or torch_dtype that is not float32, float16 or bfloat16. */
export class UnsupportedDtype extends Schema.TaggedError<UnsupportedDtype>()("UnsupportedDtype", {
  path: Schema.String,
  dtype: Schema.String,
  message: Schema.String
}) {}

/** A safetensors file or index.json whose structure is broken or lies (sizes, offsets, shards). */
export class CorruptCheckpoint extends Schema.TaggedError<CorruptCheckpoint>()("CorruptCheckpoint", {
  path: Schema.String,
  message: Schema.String
}) {}

/** The tensors of a checkpoint do not match its config: missing, unexpected or wrongly shaped. */
export class TensorMismatch extends Schema.TaggedError<TensorMismatch>()("TensorMismatch", {
  path: Schema.String,
  missing: Schema.Array(Schema.String),
  unexpected: Schema.Array(Schema.String),
  wrongShape: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** An operating-system level failure (permissions, disk full, I/O error) on a file or folder. */
export class FileSystemError extends Schema.TaggedError<FileSystemError>()("FileSystemError", {
  path: Schema.String,
  message: Schema.String
}) {}

/** Maps a failed file-system call on `path` to a FileSystemError ("Cannot <doing> <path>: <cause>."). */
export const fsError = (path: string, doing: string) => (cause: unknown) =>
  new FileSystemError({ path, message: `Cannot ${doing} ${path}: ${describeCause(cause)}.` })

/** An atomic folder write would replace an existing folder and the caller did not ask for that. */
export class TargetExists extends Schema.TaggedError<TargetExists>()("TargetExists", {
  path: Schema.String,
  message: Schema.String
}) {}

/** A folder has no tokenizer simmer can load (no tokenizer.json). Callers may treat it as "none". */
export class NoTokenizer extends Schema.TaggedError<NoTokenizer>()("NoTokenizer", {
  path: Schema.String,
  message: Schema.String
}) {}

/** tokenizer.json / tokenizer_config.json exist but cannot be parsed or built. */
export class InvalidTokenizer extends Schema.TaggedError<InvalidTokenizer>()("InvalidTokenizer", {
  path: Schema.String,
  message: Schema.String
}) {}

/** Best-effort text of an unknown thrown value, for error messages. */
export const describeCause = (cause: unknown): string => {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code
    return typeof code === "string" && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message
  }
  return String(cause)
}

/** The errno code of a Node file-system error, if any. */
export const errnoCode = (cause: unknown): string | undefined => {
  const code = (cause as { code?: unknown } | null)?.code
  return typeof code === "string" ? code : undefined
}

/**
 * The problems of a failed Schema decode as "path: message" lines, e.g.
 * `vocab_size: Expected an integer, got 3.5` or `architectures[0]: Expected string, got 1`.
 */
export const schemaProblems = (error: Schema.SchemaError): Array<string> =>
  SchemaIssue.makeFormatterStandardSchemaV1()(error.issue).issues.map((issue) => {
    const path = formatPath((issue.path ?? []).map((p) => (typeof p === "object" && p !== null && "key" in p ? p.key : p)))
    return path === "" ? issue.message : `${path}: ${issue.message}`
  })

/** `a.b[0].c` for a path of keys. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>((out, key) => {
    if (typeof key === "number") return `${out}[${key}]`
    const name = String(key)
    const plain = /^[A-Za-z_][A-Za-z0-9_]*$/.test(name)
    if (!plain) return `${out}[${JSON.stringify(name)}]`
    return out === "" ? name : `${out}.${name}`
  }, "")

/** At most `max` items, then "and N more", so one broken file does not print a thousand lines. */
export const listSome = (items: ReadonlyArray<string>, max = 12): string =>
  items.length <= max ? items.join("; ") : `${items.slice(0, max).join("; ")}; and ${items.length - max} more`
