/**
 * Property tests (fast-check, fixed seed): whatever arrives — any method, path parameter, query,
 * header, content type or body — at any route of `auth.routes()` or at the host's protected
 * routes, the server answers without a 5xx, without a stack trace or an internal message, without
 * a secret it did not just create, and stays up.
 *
 * Requests go over a real loopback socket (node:http, not supertest) so that bodies, content types
 * and repeated headers are sent exactly as generated. Some requests carry a valid admin bearer
 * (apps:read apps:write) or valid client credentials so that they get deep into the handlers; the
 * credentials the properties rely on ("keepers") are only ever used as credentials, never as the
 * `token` of a revocation or the subject of a refresh, and never named in a DELETE path, so that
 * random requests cannot destroy them. Other credentials ("sacrificial") are fair game.
 *
 * Reproduce a failure: the seed is fixed (20261122); fast-check prints the counterexample and its
 * path, and `{ seed, path }` replays it.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CATALOGUE, accessToken, createClient, setup, type Fixture } from './helpers.js';

const SEED = 20261122;
fc.configureGlobal({ seed: SEED, numRuns: 500, endOnFailure: true });

// ---- fixture ---------------------------------------------------------------------------------------

let f: Fixture;
let server: http.Server;
let port: number;
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

interface Credentials {
  clientId: string;
  secret: string;
  tokenId: string;
  jwt: string;
}
/** Never destroyed by the generated requests. */
let admin: Credentials;
let client: Credentials;
/** Destroyable by the generated requests: named in paths and token parameters. */
const sacrificial: Credentials[] = [];
/** Every secret created in setup: no generated request's response may contain one. */
const secrets: string[] = [];
/** Every audit event, as `onEvent` saw it. */
const events: Array<{ type: string }> = [];
/** What the properties reached, to check that they got deep. */
const seen = new Map<string, number>();

async function credentials(options: Parameters<typeof createClient>[1]): Promise<Credentials> {
  const c = await createClient(f.auth, options);
  const jwt = await accessToken(f.app, c.clientId, c.secret);
  secrets.push(c.secret, jwt);
  return { clientId: c.clientId, secret: c.secret, tokenId: c.tokenId, jwt };
}

beforeAll(async () => {
  // No lockout: random failed authentications must not lock out the keepers.
  f = await setup({ clientLockout: false, advanced: { refreshRaceWindow: 0 }, onEvent: (e) => events.push(e) });
  admin = await credentials({ scopes: [...CATALOGUE] });
  client = await credentials({ scopes: ['notarization:read', 'notarization:write'] });
  server = f.app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  port = (server.address() as AddressInfo).port;
}, 60_000);

/**
 * New sacrificial apps before each property (the previous property may have deleted, refreshed or
 * regenerated them), and the arbitraries that draw from them.
 */
beforeEach(async () => {
  await reviveVictims();
  A = makeArbitraries();
});

/**
 * (Re)create the sacrificial apps, in place: the arbitraries hold the objects, so that a property
 * can call this between runs and keep reaching live apps and tokens after random requests deleted,
 * refreshed or regenerated them.
 */
async function reviveVictims(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    const s = await credentials({ scopes: ['notarization:read', 'streams:read'] });
    // A second API token and a second access token per sacrificial app.
    const extra = await f.auth.apps.createToken('acme', s.clientId, { name: 'extra' });
    const jwt = await accessToken(f.app, s.clientId, extra.value);
    secrets.push(extra.value, jwt);
    const pair: Credentials[] = [s, { ...s, secret: extra.value, tokenId: extra.token.id, jwt }];
    for (const [k, c] of pair.entries()) {
      const slot = sacrificial[2 * i + k];
      if (slot) Object.assign(slot, c);
      else sacrificial.push(c);
    }
  }
}

/** Call at the start of a run: every `every` runs, bring the victims back to life. */
function reviver(every: number): () => Promise<void> {
  let runs = 0;
  return async () => {
    if (++runs % every === 0) await reviveVictims();
  };
}

afterAll(async () => {
  agent.destroy();
  await new Promise((r) => server.close(r));
  await f.cleanup();
  const summary = [...seen.entries()].sort().map(([k, v]) => `${k}=${v}`).join(' ');
  // A record of how deep the properties went, in the test output.
  console.info(`property coverage: ${summary}`);
});

// ---- the HTTP client ---------------------------------------------------------------------------------

interface Req {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body: Buffer | undefined;
  /** Send without Content-Length (chunked). */
  chunked: boolean;
}

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string;
  text: string;
}

function send(req: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[] | number> = { ...req.headers };
    if (req.body !== undefined) {
      // Node frames GET/HEAD/DELETE/OPTIONS bodies only when told how: a length, or chunked.
      if (req.chunked) headers['Transfer-Encoding'] = 'chunked';
      else headers['Content-Length'] = req.body.length;
    }
    const r = http.request({ host: '127.0.0.1', port, method: req.method, path: req.path, headers, agent, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          rawHeaders: res.rawHeaders.join('\n'),
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    r.on('timeout', () => r.destroy(new Error('timeout')));
    r.on('error', reject);
    if (req.body !== undefined) r.write(req.body);
    r.end();
  });
}

/** Internal messages that must never reach a client. */
const INTERNAL = /SqliteError|SQLITE_|TypeError|ReferenceError|RangeError|SyntaxError|Cannot read|Cannot set|is not a function|is not defined|undefined is not|Maximum call stack|ECONNREFUSED|kysely|better-sqlite3/;
const STACK = /\n\s+at |\.ts:\d+|\.js:\d+:\d+|node_modules/;

function describeReq(req: Req): string {
  const body = req.body === undefined ? '' : req.body.subarray(0, 300).toString('utf8');
  return `${req.method} ${req.path.slice(0, 200)} ${JSON.stringify(req.headers).slice(0, 300)} body(${req.body?.length ?? 0}): ${JSON.stringify(body)}`;
}

/** The route template a generated path falls under, for the coverage record. */
function templateOf(path: string): string {
  const parts = path.split('?')[0]!.split('/');
  if (parts[1] !== 'apps') return parts.join('/');
  const shape = parts.map((p, i) => (i === 2 ? ':id' : i === 4 && parts[3] === 'tokens' ? ':tokenId' : p)).join('/');
  return (ROUTES as readonly string[]).includes(shape) ? shape : '/apps/(other)';
}

/** The invariants of every answer. */
async function check(req: Req): Promise<Res> {
  let res: Res;
  try {
    res = await send(req);
  } catch (error) {
    throw new Error(`network error (the server dropped the request): ${(error as Error).message}\n${describeReq(req)}`);
  }
  const where = `${describeReq(req)}\n→ ${res.status} ${res.text.slice(0, 400)}`;
  const key = `${req.method} ${templateOf(req.path)} ${res.status}`;
  seen.set(key, (seen.get(key) ?? 0) + 1);
  seen.set(`status ${res.status}`, (seen.get(`status ${res.status}`) ?? 0) + 1);
  expect(res.status, where).toBeGreaterThanOrEqual(200);
  expect(res.status, where).toBeLessThan(500);
  expect(res.text, where).not.toMatch(STACK);
  expect(res.text, where).not.toMatch(INTERNAL);
  expect(res.rawHeaders, where).not.toMatch(INTERNAL);
  for (const secret of secrets) {
    if (res.text.includes(secret) || res.rawHeaders.includes(secret)) {
      throw new Error(`a secret created in setup (${secret.slice(0, 12)}…) is in the response\n${where}`);
    }
  }
  return res;
}

// ---- arbitraries ----------------------------------------------------------------------------------

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'] as const;
const method = fc.constantFrom(...METHODS);

/** Printable ASCII (what a header value may hold, minus controls). */
const ascii = (maxLength: number, minLength = 0) => fc.string({ unit: 'grapheme-ascii', minLength, maxLength });
/** Anything, including lone surrogates and controls. */
const anyString = (maxLength: number) => fc.string({ unit: 'binary', maxLength });

const ROUTES = [
  '/.well-known/oauth-authorization-server',
  '/.well-known/jwks.json',
  '/oauth/token',
  '/oauth/introspect',
  '/oauth/revoke',
  '/tokens/refresh',
  '/apps',
  '/apps/:id',
  '/apps/:id/tokens',
  '/apps/:id/tokens/:tokenId',
  '/apps/:id/tokens/:tokenId/regenerate',
  '/apps/:id/events',
  '/stamps',
  '/feeds',
  '/me',
] as const;

/**
 * The arbitraries, built once the fixture exists (they draw from its credentials).
 */
function makeArbitraries() {
  const keeper = () => fc.constantFrom(admin, client);
  const victim = () => fc.constantFrom(...sacrificial);

  /** A path segment: a real (sacrificial) id, a plausible one, or garbage, percent-encoded or raw. */
  const appIdSegment = () =>
    fc.oneof(
      { weight: 4, arbitrary: victim().map((c) => c.clientId) },
      { weight: 1, arbitrary: fc.constant('app_0000000000000000000000') },
      { weight: 1, arbitrary: anyString(40).map(encodeURIComponent) },
      { weight: 1, arbitrary: fc.constantFrom('%E0%A4%A', '%', '%00', '..', '%2e%2e', '%2F', 'a%2Fb', 'x'.repeat(3000), '%F0%9F%92%A9', '__proto__', 'constructor') },
    );
  const tokenIdSegment = () =>
    fc.oneof(
      { weight: 4, arbitrary: victim().map((c) => c.tokenId) },
      { weight: 1, arbitrary: fc.constant('tok_0000000000000000000000') },
      { weight: 1, arbitrary: anyString(30).map(encodeURIComponent) },
      { weight: 1, arbitrary: fc.constantFrom('%E0%A4%A', '%', '..', '__proto__') },
    );


  const pathOf = (route: string) =>
    fc.tuple(appIdSegment(), tokenIdSegment()).map(([id, tokenId]) => route.replace(':id', id).replace(':tokenId', tokenId));

  /** A query string: plausible parameters (credentials, format, pagination) and garbage. */
  const query = fc
    .array(
      fc.oneof(
        fc.tuple(
          fc.constantFrom('format', 'limit', 'cursor', 'access_token', 'client_id', 'client_secret', 'refresh_token', 'token', 'grant_type', 'scope', 'a[b]', 'x[]', '__proto__[x]'),
          fc.oneof(fc.constantFrom('env', 'postman', 'json', 'bogus', '0', '1', '100', '101', '-1', '1e3', 'WzE3XQ', ''), anyString(20)),
        ),
        fc.tuple(anyString(10), anyString(20)),
      ),
      { maxLength: 4 },
    )
    .map((pairs) =>
      pairs.length === 0
        ? ''
        : `?${pairs.map(([k, v]) => `${encodeURIComponent(k).replace(/%5B/g, '[').replace(/%5D/g, ']')}=${encodeURIComponent(v)}`).join('&')}`,
    );
  const rawQuery = fc.constantFrom('', '?', '?&&', '?%', '?a=%E0%A4%A', '?format=env&format=postman', '?limit=5&limit=6', '?cursor=' + 'A'.repeat(600));

  const basicOf = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

  /** Authorization: none, a valid credential of each kind, or garbage of every shape. */
  const authorization = (): fc.Arbitrary<string | string[] | undefined> =>
    fc.oneof(
      { weight: 3, arbitrary: fc.constant(undefined) },
      { weight: 3, arbitrary: fc.constant(`Bearer ${admin.jwt}`) },
      { weight: 1, arbitrary: fc.constant(`Bearer ${admin.secret}`) },
      { weight: 2, arbitrary: keeper().map((c) => `Bearer ${c.jwt}`) },
      { weight: 2, arbitrary: keeper().map((c) => basicOf(c.clientId, c.secret)) },
      { weight: 1, arbitrary: victim().map((c) => `Bearer ${c.jwt}`) },
      {
        weight: 2,
        arbitrary: fc
          .tuple(fc.constantFrom('Bearer', 'bearer', 'BEARER', 'Basic', 'basic', 'Digest', 'Token', 'DPoP', 'MAC', 'Negotiate', ''), fc.constantFrom(' ', '  ', '\t', ''), ascii(60))
          .map(([scheme, sep, value]) => `${scheme}${sep}${value}`),
      },
      { weight: 1, arbitrary: fc.constantFrom('Bearer', 'Bearer ', 'Basic', 'Basic ', 'Basic ====', 'Basic Og==', 'Basic YTo=', 'Basic !!!', `Bearer ${'A'.repeat(8000)}`, `Basic ${'QUFB'.repeat(2000)}`) },
      { weight: 1, arbitrary: fc.constant(`Bearer ${admin.jwt}, Bearer ${client.jwt}`) },
      { weight: 1, arbitrary: keeper().map((c) => [`Bearer ${c.jwt}`, 'Bearer garbage']) },
      { weight: 1, arbitrary: keeper().map((c) => [basicOf(c.clientId, c.secret), `Bearer ${c.jwt}`]) },
      { weight: 1, arbitrary: fc.constant(`Bearer ${admin.jwt.slice(0, -3)}abc`) },
      { weight: 1, arbitrary: ascii(200, 1).map((v) => `Bearer eat_${v.replace(/\s/g, '')}`) },
    );

  const CONTENT_TYPES = [
    'application/json',
    'application/json; charset=utf-8',
    'application/json; charset=utf-16',
    'application/json; charset=latin1',
    'application/json; charset="utf-8"; foo=bar',
    'application/json;;;',
    'application/json; charset',
    'application/problem+json',
    'application/vnd.api+json',
    'application/x-www-form-urlencoded',
    'application/x-www-form-urlencoded; charset=utf-8',
    'application/x-www-form-urlencoded; charset=utf-16',
    'application/x-www-form-urlencoded; charset=koi8-r',
    'Application/X-WWW-Form-Urlencoded',
    'text/plain',
    'text/plain; charset=utf-8',
    'multipart/form-data; boundary=----xyz',
    'multipart/form-data',
    'application/octet-stream',
    '*/*',
    'application/json, text/plain',
    'json',
    '',
    ';',
    'application/x-www-form-urlencoded; boundary="unterminated',
  ];
  const contentType = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom<string | undefined>(...CONTENT_TYPES, undefined) },
    { weight: 1, arbitrary: ascii(60) },
  );

  const scopeString = fc.oneof(
    fc.constantFrom('notarization:read', 'notarization:write', 'notarization:*', 'storage:read', 'apps:read apps:write', 'openid', '', ' ', 'a  b', 'notarization:read notarization:read', '*', ':', 'x'.repeat(300)),
    fc.array(fc.constantFrom(...CATALOGUE, 'unknown:scope', 'streams:*'), { maxLength: 4 }).map((s) => s.join(' ')),
    anyString(30),
  );

  /** A token-ish value for a `token`, `subject_token` or `refresh_token` parameter: never a keeper's. */
  const tokenParam = fc.oneof(
    victim().map((c) => c.jwt),
    victim().map((c) => c.secret),
    fc.constantFrom('eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', 'eat_' + 'A'.repeat(49), 'eat_', '..', 'a.b.c.d.e', 'x'.repeat(9000)),
    anyString(60),
  );

  /** Form parameters for the OAuth endpoints: plausible names and values, repeats, and garbage. */
  /** Who authenticates at an OAuth endpoint: a keeper or a victim (its own tokens are then revocable). */
  const oauthClient = () => fc.oneof({ weight: 2, arbitrary: keeper() }, { weight: 1, arbitrary: victim() });

  /** Random form parameters: plausible names, random values, repeats. */
  const randomForm = fc
    .record(
      {
        grant_type: fc.oneof(
          fc.constantFrom('client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange', 'password', 'refresh_token', 'authorization_code', 'token-exchange', ''),
          anyString(20),
        ),
        scope: scopeString,
        resource: fc.oneof(fc.constantFrom('https://auth.example.test', 'https://storage.example.com', 'urn:x', 'not a uri', ''), anyString(30)),
        audience: fc.oneof(fc.constantFrom('https://auth.example.test', 'https://other.example'), anyString(20)),
        token: tokenParam,
        token_type_hint: fc.constantFrom('access_token', 'refresh_token', 'api_token', 'bogus', ''),
        subject_token: tokenParam,
        subject_token_type: fc.oneof(
          fc.constantFrom('urn:ietf:params:oauth:token-type:access_token', 'urn:ietf:params:oauth:token-type:jwt', 'urn:ietf:params:oauth:token-type:id_token'),
          anyString(20),
        ),
        requested_token_type: fc.constantFrom('urn:ietf:params:oauth:token-type:access_token', 'urn:ietf:params:oauth:token-type:refresh_token'),
        actor_token: tokenParam,
        extra: anyString(30),
      },
      { requiredKeys: [] },
    )
    .chain((params) =>
      fc.array(fc.constantFrom(...Object.keys(params), 'grant_type'), { maxLength: 2 }).map((repeats) => {
        const entries: Array<[string, string]> = Object.entries(params).filter((e): e is [string, string] => typeof e[1] === 'string');
        // Repeated parameters (RFC 6749 §3.2 forbids them).
        for (const name of repeats) entries.push([name, String(params[name as keyof typeof params] ?? 'x')]);
        return entries;
      }),
    );

  /** Plausible requests that succeed or fail deep in the handlers. */
  const plausibleForm = (c: Credentials) =>
    fc.oneof(
      // client_credentials, with a scope subset or not, maybe a resource.
      fc
        .tuple(
          fc.subarray(['notarization:read', 'notarization:write', 'apps:read', 'streams:read']),
          fc.boolean(),
          fc.option(fc.constantFrom('https://auth.example.test', 'https://storage.example.com'), { nil: undefined }),
        )
        .map(([scopes, withScope, resource]): Array<[string, string]> => [
          ['grant_type', 'client_credentials'],
          ...(withScope ? ([['scope', scopes.join(' ')]] as Array<[string, string]>) : []),
          ...(resource ? ([['resource', resource]] as Array<[string, string]>) : []),
        ]),
      // token exchange of the client's own access token (exchange does not revoke the subject).
      fc.option(fc.constantFrom('notarization:read', 'notarization:read notarization:write', 'streams:read'), { nil: undefined }).map((scope): Array<[string, string]> => [
        ['grant_type', 'urn:ietf:params:oauth:grant-type:token-exchange'],
        ['subject_token', c.jwt],
        ['subject_token_type', 'urn:ietf:params:oauth:token-type:access_token'],
        ...(scope ? ([['scope', scope]] as Array<[string, string]>) : []),
      ]),
      // introspection / revocation parameters: any token but a keeper's.
      fc.tuple(tokenParam, fc.option(fc.constantFrom('access_token', 'refresh_token', 'bogus'), { nil: undefined })).map(([token, hint]): Array<[string, string]> => [
        ['token', token],
        ...(hint ? ([['token_type_hint', hint]] as Array<[string, string]>) : []),
      ]),
      // a victim's own tokens, for revocation by the victim itself.
      fc.constant<Array<[string, string]>>(c === admin || c === client ? [['token', 'unknown']] : [['token', c.jwt]]),
    );

  /** Form parameters for the OAuth endpoints, with or without client credentials (Basic or post). */
  const oauthForm = (withCredentials: boolean) =>
    fc
      .tuple(withCredentials ? fc.option(oauthClient(), { nil: undefined, freq: 6 }) : fc.constant(undefined), fc.boolean())
      .chain(([cred, post]) =>
        fc
          .oneof({ weight: 3, arbitrary: cred ? plausibleForm(cred) : randomForm }, { weight: 2, arbitrary: randomForm })
          .map((entries) => {
            const all = [...entries];
            if (cred && post) all.push(['client_id', cred.clientId], ['client_secret', cred.secret]);
            return { body: new URLSearchParams(all).toString(), basic: cred && !post ? basicOf(cred.clientId, cred.secret) : undefined };
          }),
      );

  /** A deep JSON value: nested arrays or objects, past what a recursive walk handles comfortably. */
  const deepJson = fc
    .tuple(fc.integer({ min: 10, max: 15_000 }), fc.boolean())
    .map(([depth, objects]) => (objects ? `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}` : `${'['.repeat(depth)}${']'.repeat(depth)}`));

  /** A valid app creation (the admin holds every scope), with its optional parts. */
  const validCreate = fc
    .record(
      {
        name: ascii(40, 1),
        description: fc.option(ascii(60), { nil: null }),
        scopes: fc.subarray([...CATALOGUE], { minLength: 1 }),
        customClaims: fc.dictionary(fc.constantFrom('plan', 'region', 'tier', 'x'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
        token: fc.record({ name: ascii(20, 1), expiresIn: fc.integer({ min: 60, max: 365 * 86400 }) }, { requiredKeys: [] }),
      },
      { requiredKeys: ['name', 'scopes'] },
    )
    .map((o) => JSON.stringify(o));

  /** POST /apps/:id/tokens: a valid token request for a victim (scopes within its app's). */
  const validToken = fc
    .record(
      { name: ascii(40, 1), expiresIn: fc.integer({ min: 60, max: 86400 }), scopes: fc.subarray(['notarization:read', 'streams:read'], { minLength: 1 }) },
      { requiredKeys: [] },
    )
    .map((o) => JSON.stringify(o));

  /** PATCH /apps/:id: a valid edit. */
  const validPatch = fc
    .record(
      {
        name: ascii(40, 1),
        description: fc.option(ascii(60), { nil: null }),
        customClaims: fc.dictionary(fc.constantFrom('plan', 'region'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 2 }),
      },
      { requiredKeys: [] },
    )
    .map((o) => JSON.stringify(o));

  /** Management bodies: valid ones, plausible shapes with random field values, a deep customClaims, anything. */
  const managementBody = fc.oneof(
    { weight: 3, arbitrary: validCreate },
    { weight: 3, arbitrary: validToken },
    { weight: 3, arbitrary: validPatch },
    fc.record(
      {
        name: fc.oneof(ascii(40), anyString(40), fc.constant(''), fc.constant('x'.repeat(500)), fc.integer(), fc.constant(null)),
        description: fc.oneof(anyString(100), fc.constant(null), fc.integer()),
        scopes: fc.oneof(
          fc.array(fc.constantFrom(...CATALOGUE, 'notarization:*', 'unknown:x', '', 'apps:*'), { maxLength: 4 }),
          fc.constant('notarization:read'),
          fc.array(fc.anything(), { maxLength: 3 }),
        ),
        customClaims: fc.oneof(
          fc.dictionary(fc.oneof(ascii(10), fc.constantFrom('iss', 'sub', 'scope', 'tenant_id', '__proto__', 'constructor', 'plan')), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }),
          fc.jsonValue({ maxDepth: 2 }),
        ),
        token: fc.oneof(
          fc.record(
            {
              name: fc.oneof(ascii(20), fc.integer()),
              expiresIn: fc.oneof(fc.integer({ min: -10, max: 2 * 365 * 86400 + 10 }), fc.double(), fc.constant('3600')),
              scopes: fc.oneof(fc.array(fc.constantFrom(...CATALOGUE, 'x:y'), { maxLength: 3 }), fc.constant(null)),
            },
            { requiredKeys: [] },
          ),
          fc.jsonValue({ maxDepth: 1 }),
        ),
        expiresIn: fc.oneof(fc.integer(), fc.constant(1e308), fc.constant(-0)),
        unknown: fc.jsonValue({ maxDepth: 1 }),
      },
      { requiredKeys: [] },
    ).map((o) => JSON.stringify(o)),
    deepJson.map((deep) => `{"name":"deep","scopes":["notarization:read"],"customClaims":{"a":${deep}}}`),
    fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  );

  /**
   * A management request: mostly a route of the table with a body made for it (so that it
   * succeeds or fails deep), sometimes any method on any management path with any body.
   * Deletions are rare so that the victims live long enough to be edited and reissued.
   */
  const managementRequest = fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .constantFrom<[string, string, fc.Arbitrary<string> | undefined]>(
          ['POST', '/apps', validCreate],
          ['POST', '/apps', validCreate],
          ['GET', '/apps', undefined],
          ['GET', '/apps/:id', undefined],
          ['GET', '/apps/:id', undefined],
          ['PATCH', '/apps/:id', validPatch],
          ['PATCH', '/apps/:id', validPatch],
          ['GET', '/apps/:id/tokens', undefined],
          ['POST', '/apps/:id/tokens', validToken],
          ['POST', '/apps/:id/tokens', validToken],
          ['POST', '/apps/:id/tokens/:tokenId/regenerate', undefined],
          ['GET', '/apps/:id/events', undefined],
          ['DELETE', '/apps/:id/tokens/:tokenId', undefined],
          ['DELETE', '/apps/:id', undefined],
        )
        .chain(([m, route, body]) =>
          fc.tuple(
            fc.constant(m),
            pathOf(route),
            body === undefined
              ? fc.oneof({ weight: 4, arbitrary: fc.constant<string | undefined>(undefined) }, { weight: 1, arbitrary: managementBody })
              : fc.oneof({ weight: 4, arbitrary: body }, { weight: 1, arbitrary: managementBody }),
          ),
        ),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(
        fc.constantFrom<string>(...METHODS),
        fc.constantFrom('/apps', '/apps/:id', '/apps/:id/tokens', '/apps/:id/tokens/:tokenId', '/apps/:id/tokens/:tokenId/regenerate', '/apps/:id/events').chain(pathOf),
        fc.option(managementBody, { nil: undefined }),
      ),
    },
  );

  /** Refresh bodies: a valid refresh of a victim's token (then its reuse), and plausible shapes. */
  const validRefresh = victim().map((v) => ({ client_id: v.clientId, grant_type: 'token-exchange', refresh_token: v.secret, scope: 'openid' }));
  const refreshBody = fc
    .oneof(
      { weight: 1, arbitrary: validRefresh },
      {
        weight: 3,
        arbitrary: fc.record(
          {
            client_id: fc.oneof(victim().map((c) => c.clientId), keeper().map((c) => c.clientId), anyString(20), fc.integer()),
            grant_type: fc.oneof(fc.constantFrom('token-exchange', 'refresh_token', ''), anyString(10)),
            refresh_token: fc.oneof(victim().map((c) => c.secret), tokenParam, fc.integer(), fc.constant(null)),
            scope: fc.oneof(fc.constantFrom('openid', 'openid profile', ''), anyString(10), fc.constant([])),
          },
          { requiredKeys: [] },
        ),
      },
    )
    .chain((o: Record<string, unknown>) =>
      fc.boolean().map((json) =>
        json
          ? { type: 'application/json', body: JSON.stringify(o) }
          : {
              type: 'application/x-www-form-urlencoded',
              body: new URLSearchParams(
                Object.entries(o).map(([k, v]): [string, string] => [k, typeof v === 'string' ? v : String(JSON.stringify(v))]),
              ).toString(),
            },
      ),
    );

  /** Any body at all. */
  const anyBody = fc.oneof(
    { weight: 3, arbitrary: fc.constant<Buffer | undefined>(undefined) },
    { weight: 2, arbitrary: anyString(200).map((s) => Buffer.from(s)) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 5 }).map((v) => Buffer.from(JSON.stringify(v))) },
    { weight: 1, arbitrary: fc.object({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? '')) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)) },
    { weight: 1, arbitrary: deepJson.map((s) => Buffer.from(s)) },
    { weight: 1, arbitrary: fc.integer({ min: 16_000, max: 120_000 }).map((n) => Buffer.alloc(n, 'a')) },
    { weight: 1, arbitrary: fc.constant(Buffer.from('------xyz\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\nclient_credentials\r\n------xyz--')) },
    { weight: 1, arbitrary: fc.constant(Buffer.from('\ufeff{"name":"bom"}')) },
    { weight: 1, arbitrary: fc.constant(Buffer.from('{"name":"x","scopes":["notarization:read"]}', 'utf16le')) },
    { weight: 1, arbitrary: oauthForm(true).map((o) => Buffer.from(o.body)) },
    { weight: 1, arbitrary: managementBody.map((s) => Buffer.from(s)) },
  );

  /** Extra headers: encodings, accept, forwarded, oversized, repeated. */
  const extraHeaders = fc
    .record(
      {
        'Content-Encoding': fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'bogus', 'gzip, gzip'),
        Accept: fc.constantFrom('application/json', 'text/html', '*/*', 'application/problem+json', ''),
        'X-Forwarded-For': ascii(40),
        'X-Large': fc.integer({ min: 1000, max: 6000 }).map((n) => 'x'.repeat(n)),
        Cookie: ascii(60),
      },
      { requiredKeys: [] },
    )
    .map((h) => h as Record<string, string>);

  return { managementRequest, appIdSegment, tokenIdSegment, pathOf, query, rawQuery, authorization, contentType, tokenParam, oauthForm, managementBody, refreshBody, anyBody, extraHeaders };
}

let A: ReturnType<typeof makeArbitraries>;

function buildRequest(
  m: string,
  path: string,
  auth: string | string[] | undefined,
  type: string | undefined,
  body: Buffer | undefined,
  extra: Record<string, string>,
  chunked: boolean,
): Req {
  const headers: Record<string, string | string[]> = { ...extra };
  if (auth !== undefined) headers.Authorization = auth;
  if (type !== undefined) headers['Content-Type'] = type;
  return { method: m, path, headers, body, chunked };
}

// ---- properties -----------------------------------------------------------------------------------

describe('property: no input makes the server fail, talk, or leak', () => {
  it('every route × every method × random query, headers, content type and body', async () => {
    const revive = reviver(250);
    await fc.assert(
      fc.asyncProperty(
        method,
        fc.constantFrom(...ROUTES).chain(A.pathOf),
        fc.oneof(A.query, A.rawQuery),
        A.authorization(),
        A.contentType,
        A.anyBody,
        A.extraHeaders,
        fc.boolean(),
        async (m, path, q, auth, type, body, extra, chunked) => {
          await revive();
          await check(buildRequest(m, path + q, auth, type, body, extra, chunked));
        },
      ),
      { numRuns: 2500 },
    );
  }, 120_000);

  it('the OAuth endpoints with valid client credentials (Basic or post) and plausible-to-garbage forms', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('/oauth/token', '/oauth/introspect', '/oauth/revoke'),
        A.oauthForm(true),
        fc.oneof({ weight: 5, arbitrary: fc.constant('application/x-www-form-urlencoded') }, { weight: 1, arbitrary: A.contentType }),
        fc.oneof({ weight: 5, arbitrary: fc.constant('') }, { weight: 1, arbitrary: A.query }),
        async (path, form, type, q) => {
          const res = await check(buildRequest('POST', path + q, form.basic, type, Buffer.from(form.body), {}, false));
          if (res.status === 200 && path === '/oauth/token') {
            // A grant's answer carries only its own new token.
            const body = JSON.parse(res.text) as { access_token: string };
            expect(typeof body.access_token).toBe('string');
          }
        },
      ),
      { numRuns: 1500 },
    );
  }, 120_000);

  it('the management API with the admin bearer, random paths, formats and JSON bodies', async () => {
    const revive = reviver(60);
    await fc.assert(
      fc.asyncProperty(
        A.managementRequest,
        fc.oneof(
          { weight: 3, arbitrary: fc.constant('') },
          { weight: 1, arbitrary: fc.constantFrom('?format=env', '?format=postman', '?format=xml', '?limit=1', '?limit=0', '?cursor=bogus') },
          { weight: 1, arbitrary: A.query },
        ),
        fc.oneof({ weight: 4, arbitrary: fc.constant(`Bearer ${admin.jwt}`) }, { weight: 1, arbitrary: fc.constant(`Bearer ${admin.secret}`) }, { weight: 1, arbitrary: A.authorization() }),
        fc.oneof({ weight: 5, arbitrary: fc.constant('application/json') }, { weight: 1, arbitrary: A.contentType }),
        fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: A.anyBody }),
        fc.boolean(),
        async ([m, path, body], q, auth, type, other, chunked) => {
          await revive();
          const payload = other ?? (body === undefined ? undefined : Buffer.from(body));
          await check(buildRequest(m, path + q, auth, payload === undefined ? undefined : type, payload, {}, chunked));
        },
      ),
      { numRuns: 1500 },
    );
  }, 120_000);

  it('the refresh endpoint with plausible JSON and form bodies', async () => {
    const revive = reviver(50);
    await fc.assert(
      fc.asyncProperty(A.refreshBody, fc.oneof({ weight: 4, arbitrary: fc.constant('') }, { weight: 1, arbitrary: A.query }), async ({ type, body }, q) => {
        await revive();
        await check(buildRequest('POST', `/tokens/refresh${q}`, undefined, type, Buffer.from(body), {}, false));
      }),
      { numRuns: 400 },
    );
  }, 120_000);

  it('the protected host routes with random Authorization headers, methods and queries', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'HEAD'),
        fc.constantFrom('/stamps', '/feeds', '/me'),
        fc.oneof({ weight: 4, arbitrary: fc.constant('') }, { weight: 1, arbitrary: A.query }, { weight: 1, arbitrary: A.rawQuery }),
        A.authorization(),
        async (m, path, q, auth) => {
          const res = await check(buildRequest(m, path + q, auth, undefined, undefined, {}, false));
          if (res.status === 401 || res.status === 400 || res.status === 403) {
            // RFC 6750 §3 for Bearer; RFC 9449 §7.1: a request made with the DPoP scheme gets a DPoP challenge.
            const dpop = typeof auth === 'string' && /^dpop(\s|$)/i.test(auth);
            expect(res.headers['www-authenticate'], `${m} ${path}${q}`).toMatch(dpop ? /^(DPoP .*algs="[^"]+"|Bearer realm="express-app-tokens")/ : /^Bearer realm="express-app-tokens"/);
          }
        },
      ),
      { numRuns: 800 },
    );
  }, 120_000);

  it('issue 11 finding 1: no value derived from a live credential (hash, encoding, id, part) opens any door', async () => {
    // The keepers were used already, so every verification cache holds them.
    const digest = (v: string) => createHash('sha256').update(v).digest();
    const derive = fc.constantFrom(
      (v: string) => digest(v).toString('hex'),
      (v: string) => `sha256:${digest(v).toString('hex')}`,
      (v: string) => digest(v).toString('hex').toUpperCase(),
      (v: string) => digest(v).toString('base64url'),
      (v: string) => digest(v).toString('base64'),
      (v: string) => `sha256:${digest(v).toString('base64url')}`,
      (v: string) => `eat_${digest(v).toString('hex')}`,
      (v: string) => v.slice(0, -1),
      (v: string) => `${v} `,
      (v: string) => v.toUpperCase(),
      (v: string) => v.split('.').slice(0, 2).join('.'),
      (v: string) => v.split('.')[2] ?? v.slice(4),
      (v: string) => Buffer.from(v).toString('base64url'),
    );
    const credential = fc.constantFrom(() => admin.secret, () => admin.jwt, () => client.secret, () => client.jwt);
    await fc.assert(
      fc.asyncProperty(
        credential,
        derive,
        fc.constantFrom('GET /stamps', 'GET /me', 'GET /apps', 'POST /apps', 'introspect', 'token'),
        async (pick, transform, door) => {
          const real = pick();
          const forged = transform(real).trim();
          if (forged === real || forged === '') return;
          if (door === 'introspect') {
            const body = Buffer.from(new URLSearchParams({ token: forged }).toString());
            const basic = `Basic ${Buffer.from(`${admin.clientId}:${admin.secret}`).toString('base64')}`;
            const res = await check(buildRequest('POST', '/oauth/introspect', basic, 'application/x-www-form-urlencoded', body, {}, false));
            expect(JSON.parse(res.text), forged).toEqual({ active: false });
          } else if (door === 'token') {
            const body = Buffer.from(new URLSearchParams({ grant_type: 'client_credentials', client_id: admin.clientId, client_secret: forged }).toString());
            const res = await check(buildRequest('POST', '/oauth/token', undefined, 'application/x-www-form-urlencoded', body, {}, false));
            expect(res.status, forged).toBe(401);
          } else {
            const [m, path] = door.split(' ') as [string, string];
            const body = m === 'POST' ? Buffer.from(JSON.stringify({ name: 'forged', scopes: ['notarization:read'] })) : undefined;
            const res = await check(buildRequest(m, path, `Bearer ${forged}`, body ? 'application/json' : undefined, body, {}, false));
            expect([400, 401], `${door} with ${forged}`).toContain(res.status);
          }
        },
      ),
      { numRuns: 300 },
    );
  }, 120_000);

  it('issue 11 finding 5: a path id that cannot be ours answers 404 on every route, and writes no audit event', async () => {
    const foreignId = fc.oneof(
      fc.string({ minLength: 65, maxLength: 3000 }).map((s) => `app_${s}`),
      fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !/^[A-Za-z0-9_-]{1,64}$/.test(s)),
      fc.constantFrom('a'.repeat(15_000), 'app_x<script>', 'app_ü', 'tok_\u202e', '..', 'app_x y', "app_'", 'app_%00'),
    );
    type Route = readonly [string, (id: string) => string];
    const route = fc.constantFrom<Route>(
      ['GET', (id: string) => `/apps/${id}`],
      ['PATCH', (id: string) => `/apps/${id}`],
      ['DELETE', (id: string) => `/apps/${id}`],
      ['GET', (id: string) => `/apps/${id}/tokens`],
      ['POST', (id: string) => `/apps/${id}/tokens`],
      ['GET', (id: string) => `/apps/${id}/events`],
      ['POST', (id: string) => `/apps/${admin.clientId}/tokens/${id}/regenerate`],
      ['DELETE', (id: string) => `/apps/${admin.clientId}/tokens/${id}`],
      ['DELETE', (id: string) => `/apps/${id}/tokens/${admin.tokenId}`],
    );
    const refusals = () => events.filter((e) => e.type === 'management.refused').length;
    await fc.assert(
      fc.asyncProperty(route, foreignId, fc.constantFrom(() => admin.jwt, () => client.jwt), async ([m, path], id, who) => {
        const before = refusals();
        const body = m === 'GET' || m === 'DELETE' ? undefined : Buffer.from('{"name":"x"}');
        const res = await check(buildRequest(m, path(encodeURIComponent(id)), `Bearer ${who()}`, body ? 'application/json' : undefined, body, {}, false));
        expect([400, 404], `${m} ${id.slice(0, 40)}`).toContain(res.status);
        expect(res.text.length).toBeLessThan(1000);
        await f.auth.apps.events('acme', admin.clientId); // flush
        expect(refusals()).toBe(before);
      }),
      { numRuns: 200 },
    );
  }, 120_000);

  it('afterwards: the server is up, the keepers still work, and the properties got deep', async () => {
    const jwks = await check(buildRequest('GET', '/.well-known/jwks.json', undefined, undefined, undefined, {}, false));
    expect(jwks.status).toBe(200);
    expect(JSON.parse(jwks.text).keys.length).toBeGreaterThan(0);
    const stamps = await check(buildRequest('GET', '/stamps', `Bearer ${client.jwt}`, undefined, undefined, {}, false));
    expect(stamps.status).toBe(200);
    const apps = await check(buildRequest('GET', '/apps', `Bearer ${admin.jwt}`, undefined, undefined, {}, false));
    expect(apps.status).toBe(200);
    // Depth: the generated requests reached success paths, not just the front door.
    const count = (pattern: RegExp) => [...seen.entries()].filter(([k]) => pattern.test(k)).reduce((n, [, v]) => n + v, 0);
    expect(count(/^POST \/oauth\/token 200$/), 'grants').toBeGreaterThan(0);
    expect(count(/^POST \/oauth\/introspect 200$/), 'introspections').toBeGreaterThan(0);
    expect(count(/^POST \/apps 201$/), 'apps created').toBeGreaterThan(0);
    expect(count(/^GET \/apps\/:id 200$/) + count(/^GET \/apps\/:id\/\w+ 200$/), 'app reads').toBeGreaterThan(0);
    expect(count(/^POST \/oauth\/revoke 200$/), 'revocations').toBeGreaterThan(0);
    expect(count(/^POST \/tokens\/refresh 200$/), 'refreshes').toBeGreaterThan(0);
    expect(count(/^POST \/apps\/:id\/tokens 201$/), 'tokens issued').toBeGreaterThan(0);
    expect(count(/^PATCH \/apps\/:id 200$/), 'apps edited').toBeGreaterThan(0);
    expect(count(/^POST \/apps\/:id\/tokens\/:tokenId\/regenerate 200$/), 'tokens regenerated').toBeGreaterThan(0);
    expect(count(/^DELETE \/apps\/:id(\/tokens\/:tokenId)? 204$/), 'deletions').toBeGreaterThan(0);
    expect(count(/^(GET|POST) \/(stamps|feeds|me) 20[01]$/), 'protected routes passed').toBeGreaterThan(0);
    expect(count(/^status 4\d\d$/), 'refusals').toBeGreaterThan(0);
  });
});
