import { KeyObject, sign } from 'node:crypto';
import { SignJWT, generateKeyPair } from 'jose';
const input = Buffer.from('x'.repeat(600));
for (const alg of ['EdDSA', 'ES256', 'RS256']) {
  const { privateKey } = await generateKeyPair(alg, { extractable: false });
  const k = KeyObject.from(privateKey);
  const algo = alg === 'EdDSA' ? null : 'sha256';
  const opt = alg === 'ES256' ? { key: k, dsaEncoding: 'ieee-p1363' } : k;
  const T = 1500;
  let n = 0, t0 = performance.now();
  while (performance.now() - t0 < T) { sign(algo, input, opt); n++; }
  const syncRate = n / (T / 1000);
  n = 0; t0 = performance.now();
  await Promise.all(Array.from({ length: 50 }, async () => { while (performance.now() - t0 < T) { await new Promise((r, j) => sign(algo, input, opt, (e, s) => (e ? j(e) : r(s)))); n++; } }));
  const cbRate = n / (T / 1000);
  n = 0; t0 = performance.now();
  await Promise.all(Array.from({ length: 50 }, async () => { while (performance.now() - t0 < T) { await new SignJWT({ a: 1 }).setProtectedHeader({ alg }).sign(privateKey); n++; } }));
  const joseRate = n / (T / 1000);
  console.log(`${alg}: sync ${Math.round(syncRate)}/s (${(1e6 / syncRate).toFixed(0)} µs main thread each); callback, 50 in flight ${Math.round(cbRate)}/s; jose, 50 in flight ${Math.round(joseRate)}/s`);
}
