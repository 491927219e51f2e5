/**
 * The daemon's event fan-out: every run's updates (logged states with their `seq`, live tuning
 * steps) and status changes, published once and delivered to every subscriber — the SSE and
 * NDJSON streams, the web page. A subscriber sees messages in publication order; whatever it
 * missed before subscribing is in the run's event log (see EventStream.ts).
 */
import { Context, Effect, Layer, PubSub, type Scope } from "effect"
import type { RunUpdate } from "../pipeline/RunUpdate.ts"
import type { RunId, RunStatus } from "../services/JobStore.ts"

export type HubItem = RunUpdate | { readonly _tag: "Status"; readonly status: RunStatus; readonly error?: string }

export interface HubMessage {
  readonly id: RunId
  readonly item: HubItem
}

export class RunHub extends Context.Service<RunHub, {
  readonly publish: (message: HubMessage) => Effect.Effect<void>
  /** A subscription for the life of the scope: take messages in order. */
  readonly subscribe: Effect.Effect<PubSub.Subscription<HubMessage>, never, Scope.Scope>
}>()("simmer/RunHub") {
  // Unbounded: a slow watcher costs memory rather than missing events or slowing the runs.
  static readonly layer = Layer.effect(
    RunHub,
    Effect.gen(function*() {
      const pubsub = yield* PubSub.unbounded<HubMessage>()
      return RunHub.of({
        publish: (message) => PubSub.publish(pubsub, message).pipe(Effect.asVoid),
        subscribe: PubSub.subscribe(pubsub)
      })
    })
  )
}
