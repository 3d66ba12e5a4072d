import { createMemoryStore } from '../dist/adapters/memory/index.js';
const store = createMemoryStore();
await store.init();
let id = 0;
const ev = () => ({ id: `evt_${String(id++).padStart(22, '0')}`, type: 'access_token.issued', tenantId: 'bench', appId: 'app_1', tokenId: 'tok_1', actorId: 'app_1', outcome: 'success', at: new Date(Date.now() + id), data: { grant: 'client_credentials', jti: 'x'.repeat(22), scope: 'notarization:read', aud: 'http://x', expiresAt: new Date().toISOString() } });
for (let round = 0; round < 12; round++) {
  const batch = Array.from({ length: 5000 }, ev);
  const t0 = performance.now();
  await store.appendEvents(batch);
  const us = ((performance.now() - t0) * 1000) / batch.length;
  if (round % 2 === 1) console.log(`after ${id} events of one app: appendEvents ${us.toFixed(1)} µs per event; heapUsed ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MB`);
}
