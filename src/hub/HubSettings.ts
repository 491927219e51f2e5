/**
 * Where the Hub is and where its files are kept, from the same environment variables Python's
 * `huggingface_hub` reads, so both share one cache: `HF_ENDPOINT` (a mirror), `HF_TOKEN` (gated
 * and private repositories), `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`,
 * and `HF_HUB_OFFLINE` (only what the cache holds, no request).
 */
import { Config, Effect, Option, Redacted } from "effect"
import { homedir } from "node:os"
import { join } from "node:path"

export interface HubSettings {
  /** The Hub's address; `undefined` means the client library's default. */
  readonly endpoint: string | undefined
  readonly token: string | undefined
  readonly cacheDir: string
  readonly offline: boolean
}

const optional = <A>(config: Config.Config<A>) =>
  Config.option(config).pipe(Effect.orElseSucceed(() => Option.none<A>()), Effect.map(Option.getOrUndefined))

// huggingface_hub's truthy values.
const truthy = (value: string | undefined) => value !== undefined && ["1", "on", "yes", "true"].includes(value.trim().toLowerCase())

export const hubSettings: Effect.Effect<HubSettings> = Effect.gen(function*() {
  const endpoint = yield* optional(Config.String("HF_ENDPOINT"))
  const token = yield* optional(Config.Redacted("HF_TOKEN"))
  const hubCache = yield* optional(Config.String("HF_HUB_CACHE"))
  const home = yield* optional(Config.String("HF_HOME"))
  const offline = yield* optional(Config.String("HF_HUB_OFFLINE"))
  return {
    endpoint: endpoint === undefined || endpoint.trim() === "" ? undefined : endpoint.trim().replace(/\/+$/, ""),
    token: token === undefined ? undefined : Redacted.value(token),
    cacheDir: hubCache ?? join(home ?? join(homedir(), ".cache", "huggingface"), "hub"),
    offline: truthy(offline)
  }
})
