/**
 * Who may talk to the daemon. On a loopback address anyone on the machine may, unless a token
 * is given; on any other address a bearer token is required, from SIMMER_TOKEN or a token file
 * (created with a random token, readable by its owner only, when it does not exist), and the
 * daemon refuses to start without one. Tokens are compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises"
import { dirname } from "node:path"
import { Effect, Layer, Redacted, Schema } from "effect"
import { describeCause, errnoCode } from "../io/Errors.ts"
import { Authorization, Unauthorized } from "./Api.ts"

export class TokenRequired extends Schema.TaggedError<TokenRequired>()("TokenRequired", { message: Schema.String }) {}

export const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)

/** The token in `path`, creating the file with a fresh random token (mode 0600) when it does not exist. */
export const readOrCreateTokenFile = (path: string) =>
  Effect.tryPromise({
    try: async () => {
      const text = await readFile(path, "utf8").catch(async (cause) => {
        if (errnoCode(cause) !== "ENOENT") throw cause
        const token = randomBytes(32).toString("base64url")
        await mkdir(dirname(path), { recursive: true })
        // `wx`: if another process created it meanwhile, read theirs instead of overwriting it.
        await writeFile(path, token + "\n", { mode: 0o600, flag: "wx" }).catch((e) => (errnoCode(e) === "EEXIST" ? undefined : Promise.reject(e)))
        await chmod(path, 0o600)
        return readFile(path, "utf8")
      })
      const token = text.trim()
      if (token === "") throw new Error("the file is empty; put a token in it or delete it to have one made")
      return Redacted.make(token)
    },
    catch: (cause) => new TokenRequired({ message: `Cannot use the token file ${path}: ${describeCause(cause)}.` })
  })

/** The token the daemon requires, or none; fails when binding beyond loopback without one. */
export const resolveToken = (options: { readonly host: string; readonly tokenFile: string | undefined; readonly envToken: Redacted.Redacted<string> | undefined }) =>
  Effect.gen(function*() {
    if (options.envToken !== undefined && Redacted.value(options.envToken) !== "") return options.envToken
    if (options.tokenFile !== undefined) return yield* readOrCreateTokenFile(options.tokenFile)
    if (isLoopback(options.host)) return undefined
    return yield* new TokenRequired({
      message: `simmer serve --host ${options.host} would accept runs from the network without a token. Give one with ` +
        "--token-file PATH (a token is made there if the file does not exist; clients read it with --token-file or SIMMER_TOKEN) " +
        "or the SIMMER_TOKEN environment variable, or bind to 127.0.0.1."
    })
  })

const digest = (text: string) => createHash("sha256").update(text).digest()

/** Equal tokens, compared in time that does not depend on where they differ. */
export const tokensMatch = (given: string, expected: string): boolean => timingSafeEqual(digest(given), digest(expected))

/** The bearer-token check of every endpoint that needs it; no check when there is no token. */
export const authorizationLayer = (token: Redacted.Redacted<string> | undefined): Layer.Layer<Authorization> =>
  Layer.succeed(
    Authorization,
    Authorization.of({
      bearer: (httpEffect, { credential }) =>
        token === undefined || tokensMatch(Redacted.value(credential), Redacted.value(token))
          ? httpEffect
          : Effect.fail(
            new Unauthorized({
              message: Redacted.value(credential) === ""
                ? "This daemon requires a bearer token (Authorization: Bearer <token>); simmer's client sends SIMMER_TOKEN or --token-file."
                : "The bearer token is not this daemon's."
            })
          )
    })
  )
