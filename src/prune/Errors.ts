/**
 * The typed errors of pruning. Both carry a one-paragraph `message` that ends up verbatim in
 * front of a user (CLI output, run logs), so it says what was asked and why it cannot be done.
 */
import { Schema } from "effect"

/**
 * A pruning request that would leave an impossible model: a layer with no MLP neurons or no
 * key/value group, no layers at all, query heads that are not a multiple of key/value heads,
 * unit indices that do not exist or repeat. Raised before any tensor is touched, so the model
 * the request was made on is still intact and usable.
 */
export class IllegalPrune extends Schema.TaggedError<IllegalPrune>()("IllegalPrune", {
  unit: Schema.Literals(["neurons", "heads", "layers"]),
  message: Schema.String
}) {}

/**
 * A pruning or scoring request that does not make sense on its own: a target outside (0, 1], a
 * scorer that does not exist for the unit, calibration data missing for a scorer that needs it.
 */
export class InvalidPruneRequest extends Schema.TaggedError<InvalidPruneRequest>()("InvalidPruneRequest", {
  message: Schema.String
}) {}
