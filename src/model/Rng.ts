/**
 * A small seedable random number generator (xoshiro128**) whose whole state is four 32-bit
 * words, so it can be saved with a checkpoint and resumed exactly. Used for weight init,
 * sampling and data order: everything that must replay bit for bit from a seed.
 */

export type RngState = readonly [number, number, number, number]

export class Rng {
  private s: Uint32Array

  private constructor(state: RngState) {
    this.s = Uint32Array.from(state)
  }

  /** Expands a seed with splitmix32 so that nearby seeds give unrelated streams. */
  static seeded(seed: number): Rng {
    let x = seed >>> 0
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0
      let z = x
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      return (z ^ (z >>> 16)) >>> 0
    }
    const state: [number, number, number, number] = [next(), next(), next(), next()]
    if (state.every((w) => w === 0)) state[0] = 1
    return new Rng(state)
  }

  static fromState(state: RngState): Rng {
    return new Rng(state)
  }

  state(): RngState {
    return [this.s[0], this.s[1], this.s[2], this.s[3]]
  }

  /** Next uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0
    const t = s[1] << 9
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = rotl(s[3], 11)
    return result
  }

  /** Uniform in [0, 1) with 53 bits of precision. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5
    const lo = this.nextUint32() >>> 6
    return (hi * 67108864 + lo) / 9007199254740992
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n)
  }

  /** Standard normal (Box-Muller; one value per call keeps the state easy to reason about). */
  normal(): number {
    const u = 1 - this.uniform()
    const v = this.uniform()
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
  }

  /** Fisher-Yates shuffle of a copy. */
  shuffle<A>(items: ReadonlyArray<A>): Array<A> {
    const out = items.slice()
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      const tmp = out[i]
      out[i] = out[j]
      out[j] = tmp
    }
    return out
  }
}

const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0
