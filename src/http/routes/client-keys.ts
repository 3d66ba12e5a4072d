/**
 * `/apps/:id/keys` (private_key_jwt apps, RFC 7523 §2.2): `GET` (`apps:read`) → `{items}`;
 * `POST` (`apps:write`) `{jwk}` or `{pem, alg?}`, with `kid?` and `expiresIn?` → 201 the key;
 * `DELETE /apps/:id/keys/:kid` (`apps:write`) → 204, and every access token minted with it dies.
 */
import { z } from 'zod';
import type { ManagementRoute } from '../management.js';
import { parseInput } from '../validation.js';

export const addKeyBody = z
  .object({
    jwk: z.record(z.string(), z.unknown(), { error: 'must be a public JWK (a JSON object)' }).optional().meta({ description: 'a public JWK; a private member is refused' }),
    pem: z.string({ error: 'must be a PEM public key' }).max(16_384, { error: 'is too long for a public key' }).optional().meta({ description: 'or an SPKI PEM public key (-----BEGIN PUBLIC KEY-----)' }),
    alg: z.enum(['RS256', 'PS256', 'ES256', 'EdDSA'], { error: 'must be RS256, PS256, ES256 or EdDSA' }).optional().meta({ description: 'with pem: the algorithm to pin (default: RS256 for RSA)' }),
    kid: z.string({ error: 'must be a string' }).optional().meta({ description: 'default: the key’s RFC 7638 thumbprint' }),
    expiresIn: z.number({ error: 'must be a number of seconds' }).int({ error: 'must be a whole number of seconds' }).optional(),
  })
  .strict();

export const listKeys: ManagementRoute = {
  method: 'get',
  path: '/apps/:id/keys',
  scope: 'apps:read',
  async handle({ res, params, principal, management }) {
    res.json(await management.keys.list(principal, params.id));
  },
};

export const addKey: ManagementRoute = {
  method: 'post',
  path: '/apps/:id/keys',
  scope: 'apps:write',
  async handle({ req, res, params, principal, management }) {
    const body = parseInput(addKeyBody, req.body ?? {});
    res.status(201).json(await management.keys.add(principal, params.id, body));
  },
};

export const deleteKey: ManagementRoute = {
  method: 'delete',
  path: '/apps/:id/keys/:kid',
  scope: 'apps:write',
  async handle({ req, res, params, principal, management }) {
    await management.keys.delete(principal, params.id, String(req.params.kid ?? ''));
    res.status(204).end();
  },
};
