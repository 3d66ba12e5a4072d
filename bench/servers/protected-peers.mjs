/**
 * The protected route with no auth, or with a peer library verifying our RS256 JWT against our
 * JWKS, served by the same process at /.well-known/jwks.json (fetched once, then cached by each
 * library). Same handler as ours: `res.json({ok: true})`, behind a `notarization:read` scope check.
 *
 * config: { variant: 'bare' | 'oauth2-jwt-bearer' | 'express-jwt' | 'passport-jwt', issuer, audience, jwks }
 */
import express from 'express';
import { listen, requireScope } from './common.mjs';

export async function start(config) {
  const { variant, issuer, audience, jwks } = config;
  const app = express();
  app.get('/.well-known/jwks.json', (_req, res) => {
    res.json(jwks);
  });
  const server = await listen(app);
  const port = server.address().port;
  const jwksUri = `http://127.0.0.1:${port}/.well-known/jwks.json`;
  const handler = (_req, res) => {
    res.json({ ok: true });
  };

  switch (variant) {
    case 'bare':
      app.get('/protected', handler);
      break;
    case 'oauth2-jwt-bearer': {
      const { auth, requiredScopes } = await import('express-oauth2-jwt-bearer');
      app.get('/protected', auth({ issuer, jwksUri, audience, tokenSigningAlg: 'RS256' }), requiredScopes('notarization:read'), handler);
      break;
    }
    case 'express-jwt': {
      const { expressjwt } = await import('express-jwt');
      const { default: jwksRsa } = await import('jwks-rsa');
      app.get(
        '/protected',
        expressjwt({
          secret: jwksRsa.expressJwtSecret({ cache: true, rateLimit: true, jwksRequestsPerMinute: 10, jwksUri }),
          algorithms: ['RS256'],
          issuer,
          audience,
        }),
        requireScope('notarization:read', (req) => req.auth),
        handler,
      );
      break;
    }
    case 'passport-jwt': {
      const { default: passport } = await import('passport');
      const { Strategy: JwtStrategy, ExtractJwt } = await import('passport-jwt');
      const { default: jwksRsa } = await import('jwks-rsa');
      passport.use(
        new JwtStrategy(
          {
            jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
            secretOrKeyProvider: jwksRsa.passportJwtSecret({ cache: true, rateLimit: true, jwksRequestsPerMinute: 10, jwksUri }),
            issuer,
            audience,
            algorithms: ['RS256'],
          },
          (payload, done) => done(null, payload),
        ),
      );
      app.use(passport.initialize());
      app.get('/protected', passport.authenticate('jwt', { session: false }), requireScope('notarization:read', (req) => req.user), handler);
      break;
    }
    default:
      throw new Error(`unknown variant ${variant}`);
  }
  return {
    port,
    async close() {
      server.closeAllConnections?.();
      server.close();
    },
  };
}
