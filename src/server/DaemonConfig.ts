/**
 * The daemon's settings, decided once by `simmer serve` (flags, Effect Config) and read by
 * every feature layer: where its data lives, which folders plans may read, how many runs go at
 * once, how long a shutdown waits for runs to save, the request limits and the token.
 */
import { join } from "node:path"
import { Context, type Redacted } from "effect"

export interface DaemonSettings {
  /** DATA: the job store, `runs/<id>` folders, and the default roots `models/` and `data/`. */
  readonly dataDir: string
  /** Folders (real paths) a plan's model and data files must lie under. */
  readonly allowedRoots: ReadonlyArray<string>
  /** Runs executing at once, at most (DeviceMemory may allow fewer). */
  readonly concurrency: number
  /** How long a shutdown waits for running runs to reach a step boundary and save. */
  readonly graceSeconds: number
  /** Largest request body accepted (a plan). */
  readonly maxBodyBytes: number
  /** Seconds between SSE heartbeats. */
  readonly heartbeatSeconds: number
  /** The bearer token every endpoint but /healthz and the page requires; none on a loopback bind without one. */
  readonly token: Redacted.Redacted<string> | undefined
  /** Resident memory of this process, for /metrics (process.* is read where the CLI starts the daemon). */
  readonly residentBytes: () => number
}

export class DaemonConfig extends Context.Service<DaemonConfig, DaemonSettings>()("simmer/DaemonConfig") {}

export const runsDirOf = (settings: Pick<DaemonSettings, "dataDir">) => join(settings.dataDir, "runs")
export const storeFileOf = (settings: Pick<DaemonSettings, "dataDir">) => join(settings.dataDir, "simmer.db")
