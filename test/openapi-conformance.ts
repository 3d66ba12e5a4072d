/**
 * Checks a response against the OpenAPI document of `routes()`: the operation exists, the status is
 * documented, documented constant headers hold, and the body validates against the documented
 * schema for its media type (ajv, JSON Schema 2020-12). Used by `test/openapi.test.ts` and by every
 * fixture of `test/helpers.ts`, so that any response the HTTP suite receives from a route that has
 * drifted from its document fails the test that received it.
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import type { OpenApiDocument } from '../src/index.js';

type Json = Record<string, unknown>;

/** Every `#/components/schemas/X` becomes a ref into one root schema holding the components. */
const ROOT = 'urn:express-app-tokens:openapi';
function rebase<T>(value: T): T {
  return JSON.parse(JSON.stringify(value).replaceAll('"#/components/schemas/', `"${ROOT}#/$defs/`)) as T;
}

export interface ObservedResponse {
  method: string;
  /** The request path, without the query. */
  path: string;
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  text: string;
}

export class Conformance {
  readonly doc: OpenApiDocument;
  readonly seen = new Set<string>();
  #ajv: Ajv2020 | undefined;
  readonly #validators = new Map<string, ValidateFunction>();
  readonly #templates: Array<[string, RegExp]>;

  constructor(doc: OpenApiDocument) {
    this.doc = doc;
    this.#templates = Object.keys(doc.paths).map((t) => [t, new RegExp(`^${t.replace(/\./g, '\\.').replace(/\{\w+\}/g, '[^/]+')}$`)]);
  }

  /** The documented template of a concrete path, or `undefined`. */
  template(path: string): string | undefined {
    return this.#templates.find(([, re]) => re.test(path))?.[0];
  }

  #validator(key: string, schema: Json): ValidateFunction {
    let v = this.#validators.get(key);
    if (!v) {
      if (!this.#ajv) {
        // validateFormats off: zod writes a pattern beside every format it emits (date-time).
        this.#ajv = new Ajv2020({ strict: true, allErrors: true, validateFormats: false });
        this.#ajv.addSchema({ $id: ROOT, $defs: rebase(this.doc.components.schemas) });
      }
      v = this.#ajv.compile(rebase(schema));
      this.#validators.set(key, v);
    }
    return v;
  }

  #resolve(value: Json): Json {
    const $ref = value.$ref;
    if (typeof $ref !== 'string') return value;
    const [, section, name] = /^#\/components\/(\w+)\/(.+)$/.exec($ref)!;
    return (this.doc.components as Record<string, Record<string, Json>>)[section!]![name!]!;
  }

  /** Does the document have an operation for this method and concrete path? */
  describes(method: string, path: string): boolean {
    const template = this.template(path);
    return template !== undefined && this.doc.paths[template]![method.toLowerCase()] !== undefined;
  }

  /** What is wrong with `res` against the document, or `undefined` when it conforms. */
  violation(res: ObservedResponse): string | undefined {
    const method = res.method.toLowerCase();
    const path = this.template(res.path);
    if (path === undefined) return `${res.method} ${res.path}: not a path of the document`;
    const op = this.doc.paths[path]![method];
    if (!op) return `${res.method} ${path}: no operation`;
    const documented = (op.responses as Record<string, Json>)[String(res.status)];
    if (!documented) return `${res.method} ${path} answered ${res.status}, which it does not document: ${res.text.slice(0, 300)}`;
    const response = this.#resolve(documented);
    this.seen.add(`${res.method} ${path} ${res.status}`);
    for (const [name, h] of Object.entries((response.headers ?? {}) as Record<string, Json>)) {
      const expected = (h.schema as Json | undefined)?.const;
      if (expected !== undefined && res.headers[name.toLowerCase()] !== expected) {
        return `${res.method} ${path} ${res.status}: header ${name} is ${String(res.headers[name.toLowerCase()])}, documented ${String(expected)}`;
      }
    }
    const content = response.content as Record<string, Json> | undefined;
    if (content === undefined) return res.text === '' ? undefined : `${res.method} ${path} ${res.status}: documented without a body`;
    const type = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
    const media = content[type];
    if (!media) return `${res.method} ${path} ${res.status}: media type ${type} is not documented (${Object.keys(content).join(', ')})`;
    let body: unknown;
    try {
      body = type === 'text/plain' ? res.text : JSON.parse(res.text);
    } catch {
      return `${res.method} ${path} ${res.status}: the body is not ${type}`;
    }
    const v = this.#validator(`${method} ${path} ${res.status} ${type}`, media.schema as Json);
    return v(body) ? undefined : `${res.method} ${path} ${res.status} ${type}: ${this.#ajv!.errorsText(v.errors)}\n${res.text.slice(0, 300)}`;
  }
}
