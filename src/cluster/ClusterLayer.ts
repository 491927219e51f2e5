/**
 * The cluster's plumbing for one `simmer serve --cluster` process: a Postgres client, and the
 * effect/cluster sharding over it (runners, shard locks and persisted messages in Postgres;
 * runners talk to each other over TCP sockets). A process with a runner address is a runner:
 * it takes shards and runs the runs on them. One without is a client only (an API process): it
 * sends runs and reads their replies.
 *
 * Shard locks are rows with an expiry rather than Postgres advisory locks: a runner that is
 * paused (SIGSTOP, a frozen VM) keeps its database session and would hold advisory locks
 * forever, while its rows expire after the lease and the shards move.
 */
import { NodeClusterSocket } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Option, type Redacted } from "effect"
import { RunnerAddress } from "effect/cluster"
import { SqlClient } from "effect/sql"

export interface ClusterSettings {
  /** postgres://… */
  readonly url: Redacted.Redacted<string>
  /** Where other runners reach this one; none for an API-only process. */
  readonly runnerAddress: { readonly host: string; readonly port: number } | undefined
  /** Seconds after which a silent runner's shards may be taken over. */
  readonly leaseSeconds: number
  /** How long a stopping runner waits for its runs to save (they hand over after that). */
  readonly graceSeconds: number
}

export const postgresLayer = (settings: Pick<ClusterSettings, "url">) =>
  PgClient.layer({ url: settings.url, applicationName: "simmer", connectTimeout: Duration.seconds(10) })

/**
 * When a runner stops, its shard locks and its runner row are removed once its entities have
 * stopped (and saved), so the other runners take its runs on their next assignment refresh (a
 * second) instead of after the lease. effect/cluster 4.1 releases them itself too, but its
 * release runs on a reserved connection that its own shutdown may already have returned
 * ("Pinned connection was released"), leaving the locks to expire. Built below the sharding,
 * so this runs after it has shut down, while the Postgres client still works.
 */
const handBackOnExit = (address: string) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* Effect.addFinalizer(() =>
      Effect.all([sql`DELETE FROM cluster_locks WHERE address = ${address}`, sql`DELETE FROM cluster_runners WHERE address = ${address}`], { discard: true }).pipe(
        Effect.timeout(Duration.seconds(5)),
        Effect.catchCause((cause) => Effect.logWarning(`runner ${address}: could not hand its shards back; they move when its lease expires`, cause))
      )
    )
  }))

/** The Postgres client and the sharding (and message storage) for this process. */
export const clusterLayer = (settings: ClusterSettings) => {
  const postgres = postgresLayer(settings)
  const base = settings.runnerAddress === undefined
    ? postgres
    : Layer.provideMerge(handBackOnExit(`${settings.runnerAddress.host}:${settings.runnerAddress.port}`), postgres)
  return shardingLayer(settings).pipe(Layer.provideMerge(base))
}

/** Sharding (and the message storage) for this process; it needs a SqlClient. */
const shardingLayer = (settings: ClusterSettings) => {
  const lease = Duration.seconds(settings.leaseSeconds)
  const address = settings.runnerAddress === undefined ? Option.none() : Option.some(RunnerAddress.make(settings.runnerAddress.host, settings.runnerAddress.port))
  return NodeClusterSocket.layer({
    storage: "sql",
    clientOnly: settings.runnerAddress === undefined,
    shardingConfig: {
      runnerAddress: address,
      runnerListenAddress: address,
      shardLockDisableAdvisory: true,
      shardLockExpiration: lease,
      shardLockRefreshInterval: Duration.divideUnsafe(lease, 4),
      runnerHealthCheckInterval: Duration.divideUnsafe(lease, 4),
      refreshAssignmentsInterval: Duration.seconds(1),
      entityMessagePollInterval: Duration.seconds(1),
      entityReplyPollInterval: Duration.millis(250),
      // A stopping runner (or one whose shards move to a runner that joined) interrupts a run's
      // entity at once (Execute is InterruptOnTermination); the entity then asks its run to stop
      // at the next step boundary and save (RunnerEntity.ts, within the grace period), and this
      // is how long the runner waits for that before it abandons the entity.
      entityTerminationTimeout: Duration.seconds(settings.graceSeconds + 5)
    }
  })
}

/** Parses `host:port` (an IPv6 host in brackets); undefined when it is not one. */
export const parseAddress = (text: string): { readonly host: string; readonly port: number } | undefined => {
  const match = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(text.trim())
  if (match === null) return undefined
  const port = Number(match[2])
  if (port < 1 || port > 65535) return undefined
  return { host: match[1].replace(/^\[|\]$/g, ""), port }
}
