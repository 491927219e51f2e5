/**
 * How a download shows its progress: the CLI provides a bar on stderr; everywhere else (the
 * daemon's submission, tests) downloads are silent by default.
 */
import { Context } from "effect"

export interface DownloadProgress {
  readonly update: (bytes: number) => void
  readonly finish: () => void
}

export const HubProgress = Context.Reference<(label: string, totalBytes: number) => DownloadProgress>("simmer/HubProgress", {
  defaultValue: () => () => ({ update: () => {}, finish: () => {} })
})
