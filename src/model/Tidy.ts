/**
 * tf.tidy for results that are plain objects holding tensors (a cache, a params tree): tidy
 * keeps every tensor it finds in the returned value, but its type only admits index-signature
 * containers.
 */
import * as tf from "@tensorflow/tfjs"

export const tidyKeep = <A>(fn: () => A): A =>
  tf.tidy(() => fn() as unknown as tf.TensorContainer) as unknown as A
