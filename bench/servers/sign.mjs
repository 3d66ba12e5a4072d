/**
 * The signing limit: jose `new SignJWT(…).sign(key)` alone, in a loop, with the claims and header
 * our access tokens carry. `sign` runs for `duration` seconds with `concurrency` signatures in
 * flight (WebCrypto signs on libuv's thread pool, so concurrency matters as it does for a server
 * with that many requests in flight) and answers `{ops, seconds, cpu}`.
 *
 * config: { alg, issuer, audience }
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, importJWK } from 'jose';
import { benchClaims } from './common.mjs';

export async function start(config) {
  const { alg, issuer, audience } = config;
  const pair = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
  // As the key ring does: a private key imported from its stored JWK.
  const privateKey = await importJWK({ ...(await exportJWK(pair.privateKey)), alg }, alg);
  const clientId = 'app_0ds7JgMKMO6570xPGxgg7c';
  const sign = () => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(benchClaims(clientId))
      .setProtectedHeader({ alg, kid: 'bench-key', typ: 'at+jwt' })
      .setIssuer(issuer)
      .setSubject(clientId)
      .setAudience(audience)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .setJti(randomUUID())
      .sign(privateKey);
  };
  await sign();
  return {
    info: {},
    async command(msg) {
      if (msg.cmd !== 'sign') throw new Error(`unknown command ${msg.cmd}`);
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const end = t0 + msg.duration * 1000;
      let ops = 0;
      await Promise.all(
        Array.from({ length: msg.concurrency }, async () => {
          while (performance.now() < end) {
            await sign();
            ops++;
          }
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      return { ops, seconds, cpuPercent: ((cpu.user + cpu.system) / 1e6 / seconds) * 100 };
    },
  };
}
