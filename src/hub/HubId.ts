/**
 * A Hugging Face Hub repository named the way every peer tool names it: `org/name`, optionally
 * `@revision` (a branch, a tag or a commit sha). A name is taken for a Hub id only when no local
 * folder or file of that name exists, as transformers does, so `models/base` stays a folder.
 */
import { existsSync } from "node:fs"
import { isAbsolute, resolve } from "node:path"

export type RepoKind = "model" | "dataset"

export interface HubId {
  /** `org/name`. */
  readonly repo: string
  /** What the user asked for; `undefined` means the default branch. */
  readonly revision: string | undefined
}

// The Hub's own rules: letters, digits, `-`, `_`, `.`; no leading or trailing `-`/`.` in a part, no `--` or `..`.
const part = "[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
const idPattern = new RegExp(`^(${part}/${part})(?:@([A-Za-z0-9][A-Za-z0-9._/-]{0,254}))?$`)

/** The id `text` names, or undefined when it is not of the Hub's form. */
export const parseHubId = (text: string): HubId | undefined => {
  const match = idPattern.exec(text)
  if (match === null || match[1].includes("--") || match[1].includes("..")) return undefined
  const revision = match[2]
  if (revision !== undefined && (revision.includes("..") || revision.endsWith("/"))) return undefined
  return { repo: match[1], revision }
}

export const formatHubId = (id: HubId): string => (id.revision === undefined ? id.repo : `${id.repo}@${id.revision}`)

/** A commit sha, which pins a revision for good. */
export const isCommitSha = (revision: string): boolean => /^[0-9a-f]{40}$/.test(revision)

/**
 * What a model argument names: a Hub id when it has the Hub's form and no local path of that
 * name exists (relative paths read from `folder`), else a local path.
 */
export const hubIdUnlessLocal = (text: string, folder: string): HubId | undefined =>
  text.startsWith(".") || isAbsolute(text) || existsSync(resolve(folder, text)) ? undefined : parseHubId(text)
