/**
 * Peer token endpoints (client_credentials, client_secret_basic), minting JWT access tokens with
 * the same claims and the same algorithm as ours:
 *
 * - `oidc-provider`: clientCredentials + resourceIndicators with `accessTokenFormat: 'jwt'`
 *   (RFC 9068 JWTs signed with a key of the provider's keystore), `extraTokenClaims` for
 *   tenant_id/app_name/api_token_id, the default (in-memory) adapter.
 * - `oauth2-server` (@node-oauth/oauth2-server): a model whose `generateAccessToken` signs with
 *   jose, whose `getClient` checks the secret against a SHA-256 hash (as ours does), and whose
 *   `saveToken` stores nothing (a JWT needs no storage).
 *
 * - `bare` (issue 24): the floor of any Express token endpoint: a bare `POST` that parses the same
 *   urlencoded body (express.urlencoded) and the same Basic header, and answers a fixed JSON of the
 *   same size (a JWT with the same claims and alg, signed once at start). No secret check, no signing.
 *
 * config: { variant: 'oidc-provider' | 'oauth2-server' | 'bare', alg, issuer, audience }
 * info: { client: {clientId, secret}, path }
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import express from 'express';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { benchClaims, listen } from './common.mjs';

const sha256 = (s) => createHash('sha256').update(s).digest();

export async function start(config) {
  const { variant, alg, issuer, audience } = config;
  const clientId = `app_${randomBytes(11).toString('hex')}`;
  const secret = `eat_${randomBytes(32).toString('base64url')}`;
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
  const app = express();
  let path = '/oauth/token';

  if (variant === 'oidc-provider') {
    const { default: Provider } = await import('oidc-provider');
    const jwk = { ...(await exportJWK(privateKey)), alg, use: 'sig', kid: 'bench-key' };
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: clientId,
          client_secret: secret,
          grant_types: ['client_credentials'],
          redirect_uris: [],
          response_types: [],
          token_endpoint_auth_method: 'client_secret_basic',
          scope: 'notarization:read',
        },
      ],
      jwks: { keys: [jwk] },
      // Otherwise the client's id_token alg defaults to RS256, which needs an RSA key.
      clientDefaults: { id_token_signed_response_alg: alg },
      scopes: ['notarization:read'],
      routes: { token: '/oauth/token' },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => audience,
          useGrantedResource: () => true,
          getResourceServerInfo: () => ({
            scope: 'notarization:read',
            audience,
            accessTokenTTL: 3600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          }),
        },
      },
      extraTokenClaims: (_ctx, token) => {
        const { client_id: _c, scope: _s, ...rest } = benchClaims(token.clientId);
        return rest;
      },
    });
    provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error', err));
    app.use(provider.callback());
  } else if (variant === 'oauth2-server') {
    const { default: OAuth2Server } = await import('@node-oauth/oauth2-server');
    const { Request, Response } = OAuth2Server;
    const clients = new Map([[clientId, { id: clientId, hash: sha256(secret), grants: ['client_credentials'], scopes: ['notarization:read'] }]]);
    const model = {
      async getClient(id, presented) {
        const client = clients.get(id);
        if (!client || typeof presented !== 'string') return null;
        if (!timingSafeEqual(sha256(presented), client.hash)) return null;
        return { id: client.id, grants: client.grants, scopes: client.scopes };
      },
      async getUserFromClient(client) {
        return { id: client.id };
      },
      async validateScope(_user, client, scope) {
        const requested = scope ?? client.scopes;
        return requested.every((s) => client.scopes.includes(s)) ? requested : false;
      },
      async generateAccessToken(client, _user, scope) {
        const now = Math.floor(Date.now() / 1000);
        return new SignJWT({ ...benchClaims(client.id), scope: scope.join(' ') })
          .setProtectedHeader({ alg, kid: 'bench-key', typ: 'at+jwt' })
          .setIssuer(issuer)
          .setSubject(client.id)
          .setAudience(audience)
          .setIssuedAt(now)
          .setExpirationTime(now + 3600)
          .setJti(randomUUID())
          .sign(privateKey);
      },
      async saveToken(token, client, user) {
        return { ...token, client, user };
      },
    };
    const oauth = new OAuth2Server({ model, accessTokenLifetime: 3600, allowBearerTokensInQueryString: false });
    app.post(path, express.urlencoded({ extended: false }), async (req, res) => {
      const request = new Request(req);
      const response = new Response(res);
      try {
        await oauth.token(request, response);
        res.set(response.headers).status(response.status).json(response.body);
      } catch (e) {
        res.status(e.code ?? 500).json({ error: e.name ?? 'server_error', error_description: e.message });
      }
    });
  } else if (variant === 'bare') {
    const now = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT({ ...benchClaims(clientId), scope: 'notarization:read' })
      .setProtectedHeader({ alg, kid: 'bench-key', typ: 'at+jwt' })
      .setIssuer(issuer)
      .setSubject(clientId)
      .setAudience(audience)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .setJti(randomUUID())
      .sign(privateKey);
    const body = { access_token: jwt, token_type: 'Bearer', expires_in: 3600, scope: 'notarization:read' };
    app.post(path, express.urlencoded({ extended: false }), (req, res) => {
      const header = req.headers.authorization ?? '';
      const decoded = header.startsWith('Basic ') ? Buffer.from(header.slice(6), 'base64').toString('utf8') : '';
      const colon = decoded.indexOf(':');
      const id = decodeURIComponent(decoded.slice(0, colon));
      const presented = decodeURIComponent(decoded.slice(colon + 1));
      if (colon === -1 || id !== clientId || presented.length === 0 || req.body.grant_type !== 'client_credentials') {
        res.status(400).json({ error: 'invalid_request' });
        return;
      }
      res.set('Cache-Control', 'no-store');
      res.json(body);
    });
  } else {
    throw new Error(`unknown variant ${variant}`);
  }
  const server = await listen(app);
  return {
    port: server.address().port,
    info: { client: { clientId, secret }, path },
    async close() {
      server.closeAllConnections?.();
      server.close();
    },
  };
}
