/**
 * DPoP (RFC 9449) over HTTP: the proofs a request carries, the token endpoint's binding (§5), the
 * resource-server check behind `authenticate()` (§7.1) and its `WWW-Authenticate: DPoP`
 * challenges. The proof checks themselves live in `core/dpop.ts`.
 *
 * @module
 */
import type { Request, Response } from 'express';
import type { InternalAuthInfo } from '../core/access-tokens.js';
import { DPOP_ALGORITHMS, boundJkt, type CheckedProof } from '../core/dpop.js';
import { AppTokensError, isAppTokensError } from '../core/errors.js';
import { DPOP_BOUND_APP_REFUSAL, type AppTokensService } from '../core/service.js';
import type { AppRecord } from '../store.js';

/** The `algs` of our DPoP challenges (§7.1): what `dpop_signing_alg_values_supported` lists. */
const ALGS = DPOP_ALGORITHMS.join(' ');
/** RFC 7235 token68, the shape of an access token in `Authorization: DPoP <token>` (§7.1). */
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * Every `DPoP` header line of a request, from the raw headers: Node would join repeated lines into
 * one value, which must still count as two proofs (§4.3 check 1).
 */
export function dpopProofs(req: Request): string[] {
  const out: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'dpop') out.push(raw[i + 1]!);
  }
  return out;
}

/** The path of the request as the client sent it (mount points included), without the query. */
function requestPath(req: Request): string {
  const url = req.originalUrl ?? req.url;
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** `true` when the `Authorization` header uses the DPoP scheme (case-insensitive, RFC 9110 §11.1). */
export function isDpopScheme(header: string | undefined): header is string {
  return header !== undefined && header.length > 5 && header.charCodeAt(4) === 32 && header.slice(0, 4).toLowerCase() === 'dpop';
}

/**
 * The resource-server side of RFC 9449 (§4.3, §7.1): `Authorization: DPoP <token>` with one proof
 * whose key is the token's `cnf.jkt`, whose `ath` hashes the token, and whose `jti` was never seen
 * by any instance. The token is verified (or taken from the cache) exactly as a bearer token is;
 * the proof check and the replay insert are the only extra work. Throws `invalid_request`,
 * `invalid_token`, `invalid_dpop_proof` or `use_dpop_nonce`.
 */
export async function verifyDpopRequest(
  service: AppTokensService,
  req: Request,
  audience: string = service.options.audience,
): Promise<{ info: InternalAuthInfo; proof: CheckedProof }> {
  const header = req.headers.authorization!;
  const token = header.slice(5);
  if (!TOKEN68.test(token)) throw new AppTokensError('invalid_request', 'malformed Authorization header', { field: 'Authorization' });
  // An API token is the client's secret, never DPoP-bound: refused before any proof or store work.
  if (service.secrets.looksLikeOurs(token)) throw notBound('an API token');
  if (!service.isReady) await service.ready();
  const proof = await service.dpop.check({ proofs: dpopProofs(req), method: req.method, path: requestPath(req), accessToken: token }).catch(atResource);
  const info = service.cachedBearer(token, audience) ?? (await service.verifyBearer(token, audience));
  const jkt = boundJkt(info.claims);
  // A token minted without a proof is a bearer credential: it travels as Bearer.
  if (jkt === undefined) throw notBound(info.kind === 'api_token' ? 'an API token' : 'the access token');
  if (jkt !== proof.jkt) throw new AppTokensError('invalid_token', 'the DPoP proof key is not the key the access token is bound to');
  await service.dpop.consume(proof).catch(atResource);
  return { info, proof };
}

function notBound(what: string): AppTokensError {
  return new AppTokensError('invalid_token', `${what} is not DPoP-bound; send it with Authorization: Bearer`);
}

/** At a resource server, proof errors are 401 (§7.1, §8); the token endpoint answers them 400 (§5, §9). */
function atResource(error: unknown): never {
  if (isAppTokensError(error, 'invalid_dpop_proof', 'use_dpop_nonce')) {
    throw new AppTokensError(error.code, error.message, { status: 401, field: error.field });
  }
  throw error;
}

/** A DPoP-bound token presented as a bearer (§7.2): refused, whatever else holds. */
export function downgradeError(): AppTokensError {
  return new AppTokensError('invalid_token', 'the access token is DPoP-bound: send it with Authorization: DPoP and a DPoP proof');
}

/**
 * A refusal at a bearer door whose answer names DPoP as the scheme to use (§7.1): a DPoP-bound token
 * sent as Bearer (§7.2), or an API token of an app registered with `dpopBoundAccessTokens`.
 */
export function wantsDpop(error: AppTokensError): boolean {
  return error.code === 'invalid_token' && (error.message === DOWNGRADE || error.message === DPOP_BOUND_APP_REFUSAL);
}
const DOWNGRADE = downgradeError().message;

/** `dpop: 'required'` and a request that is not DPoP. */
export function dpopRequiredError(): AppTokensError {
  return new AppTokensError('invalid_token', 'this resource requires a DPoP-bound access token: send Authorization: DPoP and a DPoP proof');
}

/** After a successful DPoP request: hand the client the current nonce when its proof had an older one (§8.2). */
export function offerNonce(service: AppTokensService, res: Response, proof: CheckedProof): void {
  if (!proof.currentNonce) res.setHeader('DPoP-Nonce', service.dpop.currentNonce()!);
}

function quote(value: string): string {
  return value.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '');
}

/** The RFC 9449 §7.1 challenge for `error` (none for a request without credentials, RFC 6750 §3.1). */
export function dpopChallenge(error?: AppTokensError): string {
  if (error === undefined || error.code === 'missing_token') return `DPoP algs="${ALGS}"`;
  const scope = error.code === 'insufficient_scope' && error.scopes?.length ? `, scope="${quote(error.scopes.join(' '))}"` : '';
  return `DPoP error="${error.code}", error_description="${quote(error.message)}"${scope}, algs="${ALGS}"`;
}

const CHALLENGED = new Set(['invalid_request', 'invalid_token', 'insufficient_scope', 'invalid_dpop_proof', 'use_dpop_nonce', 'missing_token']);

/**
 * Answer a failed DPoP request (or any request under `dpop: 'required'`): RFC 9449 §7.1 challenge,
 * 401 for proof and token errors (§7.1, §8; 400 is the token endpoint's), a fresh `DPoP-Nonce` with
 * `use_dpop_nonce` (§8). `alsoBearer`: a bearer request that failed, whose Bearer challenge comes first.
 */
export function sendDpopError(service: AppTokensService, res: Response, error: AppTokensError, bearerChallenge?: string): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  const challenged = CHALLENGED.has(error.code);
  if (challenged) {
    res.setHeader('WWW-Authenticate', bearerChallenge === undefined ? dpopChallenge(error) : [bearerChallenge, dpopChallenge()]);
  }
  if (error.code === 'use_dpop_nonce') res.setHeader('DPoP-Nonce', service.dpop.currentNonce()!);
  if (error.code === 'missing_token') {
    res.status(401).end();
    return;
  }
  const status = error.status;
  if (error.retryAfter !== undefined) res.setHeader('Retry-After', String(error.retryAfter));
  const code = challenged ? error.code : error.status >= 500 && error.status !== 503 ? 'server_error' : error.code;
  res.status(status).json({ error: code, error_description: error.message });
}

/**
 * The token endpoint's side (§5): a request with a valid proof gets a token bound to its key (the
 * returned thumbprint); a client registered with `dpopBoundAccessTokens` must send one (§5.2). A
 * missing proof is answered `invalid_dpop_proof` rather than `invalid_request`: it names what the
 * client must fix, and it is the code §5 gives every DPoP failure at the token endpoint.
 */
export async function tokenRequestBinding(service: AppTokensService, req: Request, res: Response, app: AppRecord): Promise<string | undefined> {
  const proofs = dpopProofs(req);
  if (proofs.length === 0) {
    if (app.dpopBoundAccessTokens === true) {
      throw new AppTokensError('invalid_dpop_proof', 'DPoP: this client must send a DPoP proof (it is registered with dpopBoundAccessTokens)', {
        field: 'DPoP',
      });
    }
    return undefined;
  }
  try {
    const proof = await service.dpop.check({ proofs, method: req.method, path: requestPath(req) });
    await service.dpop.consume(proof);
    offerNonce(service, res, proof);
    return proof.jkt;
  } catch (error) {
    // §9: the authorization server answers 400 use_dpop_nonce with the nonce to use.
    if (isAppTokensError(error, 'use_dpop_nonce')) res.setHeader('DPoP-Nonce', service.dpop.currentNonce()!);
    throw error;
  }
}
