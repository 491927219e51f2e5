/**
 * A failed Schema decode of a file a person wrote (a plan), as sentences that person can act
 * on, each with the path of the value it is about. The Schema library's own texts describe its
 * internals (`Expected { readonly "task": "arith", ... } | …`, `Missing key`); these say what to
 * write instead: an unknown key gets the closest known one ("did you mean iterations?"), a union
 * of mappings says which keys choose a member ("give either parameters or perLayer"), and a
 * member the input clearly meant (its `task: arith`, its `file:`) reports its own problems.
 *
 * Generic over the schema: everything comes from the issue tree and the schema's AST, so a
 * schema that grows (new keys, new union members) needs no change here. Decode with
 * `decodeOptions` so unknown keys are issues and issues carry the input they are about.
 */
import { SchemaAST, SchemaIssue } from "effect"

export interface Problem {
  /** Keys and indices from the document's root to the value the problem is about. */
  readonly path: ReadonlyArray<PropertyKey>
  readonly message: string
}

/** Parse options for `describeProblems`: every issue, unknown keys rejected, inputs kept for messages. */
export const decodeOptions = { errors: "all", onExcessProperty: "error", reportInput: true } as const

type Ast = SchemaAST.AST

const isPlainObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/** How a value looks in a message: strings bare (as YAML writes them), the rest as JSON. */
const shown = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  try {
    const text = JSON.stringify(value)
    return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text
  } catch {
    return String(value)
  }
}

/** "a", "a or b", "a, b or c" */
export const orList = (items: ReadonlyArray<string>): string =>
  items.length <= 1 ? items.join("") : `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`

/** The members of a union, nested unions flattened. */
const unionMembers = (ast: Ast): Array<Ast> => (SchemaAST.isUnion(ast) ? ast.types.flatMap(unionMembers) : [ast])

const propertiesOf = (ast: Ast): ReadonlyArray<SchemaAST.PropertySignature> =>
  SchemaAST.isObjects(ast) ? ast.propertySignatures : []

const isOptionalProperty = (p: SchemaAST.PropertySignature): boolean =>
  p.type.context?.isOptional === true || p.type.encoding !== undefined

interface LiteralKey {
  readonly key: string
  readonly values: ReadonlyArray<unknown>
  readonly optional: boolean
}

/** Keys whose schema is a literal or a union of literals. */
const literalKeys = (ast: Ast): Array<LiteralKey> =>
  propertiesOf(ast).flatMap((p) => {
    const literals = unionMembers(p.type)
    return literals.every(SchemaAST.isLiteral)
      ? [{ key: String(p.name), values: literals.map((l) => (l as SchemaAST.Literal).literal), optional: isOptionalProperty(p) }]
      : []
  })

/**
 * The keys that choose a member of a union: a key with a single literal (`task: arith`), or one
 * whose literals other members give too (`kind: sft | cpt` beside `kind: grpo`). A member whose
 * choosing key is optional (it has a default) is the one meant when the input leaves it out.
 */
const choosingKeys = (member: Ast, members: ReadonlyArray<Ast>): Array<LiteralKey> =>
  literalKeys(member).filter((k) =>
    k.values.length === 1 ||
    // A key other members take with the same values (e.g. an optional splitBy) chooses nothing.
    members.some((other) =>
      other !== member && literalKeys(other).some((o) => o.key === k.key && (o.values.length !== k.values.length || o.values.some((v) => !k.values.includes(v))))
    ))

const requiredKeys = (ast: Ast): Array<string> => propertiesOf(ast).filter((p) => !isOptionalProperty(p)).map((p) => String(p.name))

/** A schema in words, for "expected ..." */
export const describeAst = (ast: Ast): string => {
  switch (ast._tag) {
    case "Literal":
      return typeof ast.literal === "string" ? ast.literal : String(ast.literal)
    case "Union":
      return orList(unionMembers(ast).map(describeAst))
    case "Arrays": {
      const element = ast.rest[0] ?? ast.elements[0]
      return element === undefined ? "an empty list" : `a list of ${plural(element)}`
    }
    case "Objects":
      return "a mapping (key: value)"
    case "String":
      return "text"
    case "Number":
      return ast.checks?.some((c) => c.annotations?.expected === "an integer") ? "an integer" : "a number"
    case "Boolean":
      return "true or false"
    default:
      return "a valid value"
  }
}

/** What a list holds: "integers", "mappings", "neurons, heads or layers". */
const plural = (element: Ast): string => {
  const one = describeAst(element)
  if (one === "an integer") return "integers"
  if (one === "a number") return "numbers"
  if (SchemaAST.isObjects(element) || unionMembers(element).every(SchemaAST.isObjects)) return "mappings"
  return one
}

const normalise = (key: string) => key.toLowerCase().replace(/[_\-\s]/g, "")

const editDistance = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length]
}

const commonPrefix = (a: string, b: string): number => {
  let n = 0
  while (n < a.length && n < b.length && a[n] === b[n]) n++
  return n
}

/**
 * The known key a mistyped one most likely meant: the same letters ignoring case and separators
 * (batch_size → batchSize), else a close spelling (iteration → iterations) or the same start
 * (retry → retries).
 */
export const closestKey = (key: string, known: ReadonlyArray<string>): string | undefined => {
  const typed = normalise(key)
  const exact = known.find((k) => normalise(k) === typed)
  if (exact !== undefined) return exact
  const close = known
    .map((k) => ({ k, d: editDistance(typed, normalise(k)), prefix: commonPrefix(typed, normalise(k)) }))
    .filter(({ k, d, prefix }) => d <= Math.max(1, Math.floor(Math.min(typed.length, k.length) / 3)) || prefix >= Math.min(4, typed.length))
    .sort((a, b) => a.d - b.d)
  return close[0]?.k
}

const unknownKeyText = (key: string, known: ReadonlyArray<string>): string => {
  const suggestion = closestKey(key, known)
  return suggestion !== undefined
    ? `unknown key "${key}"; did you mean ${suggestion}?`
    : `unknown key "${key}"; the keys here are ${known.join(", ")}`
}

/** The standard formatter's text for a leaf, with a lower-case start, as the tail of "path: ...". */
const leafProblems = (issue: SchemaIssue.Issue, path: ReadonlyArray<PropertyKey>): Array<Problem> =>
  SchemaIssue.makeFormatterStandardSchemaV1()(issue).issues.map((i) => ({
    path: [...path, ...(i.path ?? []).map((p) => (typeof p === "object" && p !== null && "key" in p ? p.key : p) as PropertyKey)],
    message: i.message.replace(/^Expected /, "expected ")
  }))

/** The issue (under `issue`, through nested unions) produced by trying `member`. */
const issueOfMember = (issues: ReadonlyArray<SchemaIssue.Issue>, member: Ast): SchemaIssue.Issue | undefined => {
  for (const issue of issues) {
    if ("ast" in issue && issue.ast === member) return issue
    if (issue._tag === "AnyOf") {
      const nested = issueOfMember(issue.issues, member)
      if (nested !== undefined) return nested
    }
  }
  return undefined
}

/** A union of mappings: report the member the input chose, or say which keys choose one. */
const objectUnionProblems = (
  issue: SchemaIssue.AnyOf,
  input: Record<string, unknown>,
  members: ReadonlyArray<Ast>,
  path: ReadonlyArray<PropertyKey>
): Array<Problem> => {
  const chosen = members.filter((m) => {
    const literals = choosingKeys(m, members)
    return literals.length > 0
      ? literals.every(({ key, values, optional }) => (key in input ? values.includes(input[key]) : optional))
      : requiredKeys(m).some((k) => k in input)
  })
  if (chosen.length === 1) {
    const own = issueOfMember(issue.issues, chosen[0])
    if (own !== undefined) return walk(own, path)
  }
  // A choosing key with a value no member has: say which values it takes.
  const byKey = new Map<string, Array<unknown>>()
  for (const m of members) for (const { key, values } of choosingKeys(m, members)) byKey.set(key, [...(byKey.get(key) ?? []), ...values])
  const badChoice = [...byKey.entries()].find(([key, values]) => key in input && !values.includes(input[key]))
  if (badChoice !== undefined) {
    const [key, values] = badChoice
    return [{ path: [...path, key], message: `expected ${orList(values.map(String))}, got ${shown(input[key])}` }]
  }
  const alternatives = [
    ...[...byKey.entries()].map(([key, values]) => `${key} (${orList(values.map(String))})`),
    ...members.filter((m) => choosingKeys(m, members).length === 0).map((m) => requiredKeys(m).join(" and "))
  ]
  const known = [...new Set(members.flatMap((m) => propertiesOf(m).map((p) => String(p.name))))]
  const unknown = Object.keys(input).filter((k) => !known.includes(k))
  const hints = unknown.map((k) => {
    const suggestion = closestKey(k, known)
    return `"${k}" is not a key here${suggestion !== undefined ? ` (did you mean ${suggestion}?)` : ""}`
  })
  const choose = `give either ${orList(alternatives)}${chosen.length > 1 ? (alternatives.length === 2 ? ", not both" : ", only one") : ""}`
  return [{ path, message: [choose, ...hints].join("; ") }]
}

const unionProblems = (issue: SchemaIssue.AnyOf, path: ReadonlyArray<PropertyKey>): Array<Problem> => {
  const input = issue.input
  const members = unionMembers(issue.ast)
  if (isPlainObject(input) && members.every(SchemaAST.isObjects)) return objectUnionProblems(issue, input, members, path)
  // Members whose type does not fit the input leave no issue; one left is the member meant.
  if (issue.issues.length === 1) return walk(issue.issues[0], path)
  return [{ path, message: `expected ${describeAst(issue.ast)}${"input" in issue ? `, got ${shown(input)}` : ""}` }]
}

const walk = (issue: SchemaIssue.Issue, path: ReadonlyArray<PropertyKey>): Array<Problem> => {
  switch (issue._tag) {
    case "Pointer":
      return walk(issue.issue, [...path, ...issue.path])
    case "Composite":
      return issue.issues.flatMap((i) => walk(i, path))
    case "Encoding":
      return walk(issue.issue, path)
    case "AnyOf":
      return unionProblems(issue, path)
    case "UnexpectedKey": {
      const key = String(path[path.length - 1])
      return [{ path, message: unknownKeyText(key, propertiesOf(issue.ast).map((p) => String(p.name))) }]
    }
    case "MissingKey": {
      // A missing element n of a list: the list is too short.
      const last = path[path.length - 1]
      return typeof last === "number"
        ? [{ path: path.slice(0, -1), message: `needs at least ${last + 1} entr${last === 0 ? "y" : "ies"}` }]
        : [{ path, message: "required, but missing" }]
    }
    case "InvalidType":
      return [{ path, message: `expected ${describeAst(issue.ast)}${"input" in issue ? `, got ${shown(issue.input)}` : ""}` }]
    default:
      return leafProblems(issue, path)
  }
}

/** Every problem of a failed decode (made with `decodeOptions`), in document order of the issue tree. */
export const describeProblems = (issue: SchemaIssue.Issue): Array<Problem> => walk(issue, [])
