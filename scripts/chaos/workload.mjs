/**
 * The load a scenario runs while it injects its fault, the ledger of what the servers
 * acknowledged, and the checks of the guarantees against both.
 *
 * Every answer is classified: 2xx and 4xx are answers; 503 must carry Retry-After (delay-seconds,
 * RFC 9110 §10.2.3); any other 5xx is a violation; no answer within the deadline is a hang; a
 * refused or reset connection is a violation unless the scenario killed that instance.
 * A write is acknowledged when its 201/200/204 arrived; only acknowledged writes are in the ledger.
 */
import { basic, bearer, call, form, jsonHeaders, sleep } from './util.mjs';

const SCOPES = ['notarization:read'];

/** Retry-After as delay-seconds: a positive whole number. */
const retryAfterOk = (res) => /^[1-9]\d*$/.test(String(res.headers['retry-after'] ?? ''));

/**
 * @param {{instances: Array<{name: string, base: string, exited: boolean}>, admin: {client_id: string, client_secret: string}, deadlineMs: number}} o
 */
export function createWorkload({ instances, admin, deadlineMs }) {
  const stats = { requests: 0, byStatus: {}, retryAfter503: 0, slowest: 0, slowestWhat: '' };
  /** Guarantee violations: `{guarantee, detail}`. */
  const violations = [];
  const ledger = {
    /** Acknowledged apps: `{id, value, jwt?}`; `deleted` once a DELETE was acknowledged. */
    apps: [],
    /** Acknowledged extra tokens: `{appId, id, value, deleted?}`. */
    tokens: [],
    /** Acknowledged regenerations: `{appId, id, oldValue, newValue}`. */
    regenerations: [],
  };
  /** Instances the scenario killed on purpose: a refused connection there is expected. */
  const killed = new Set();
  let adminToken;
  let stopped = false;

  const note = (guarantee, detail) => {
    if (violations.length < 500) violations.push({ guarantee, detail, at: new Date().toISOString() });
  };

  /** One request, classified. Returns the response (status 0: no answer). */
  async function req(instance, method, path, options = {}, label = `${method} ${path.replace(/\/[0-9a-zA-Z_-]{20,}/g, '/…')}`) {
    const res = await call(instance.base, method, path, { ...options, timeoutMs: deadlineMs });
    stats.requests += 1;
    const key = res.status === 0 ? `no answer (${res.error})` : String(res.status);
    stats.byStatus[key] = (stats.byStatus[key] ?? 0) + 1;
    if (res.ms > stats.slowest) {
      stats.slowest = res.ms;
      stats.slowestWhat = `${instance.name} ${label} → ${res.status || res.error}`;
    }
    if (res.status === 0) {
      if (res.error === 'timeout') note('no hang', `${instance.name} ${label}: no answer within ${deadlineMs} ms`);
      else if (!killed.has(instance.name) && !instance.exited) note('no instance exits', `${instance.name} ${label}: connection ${res.error}`);
    } else if (res.status === 503) {
      if (retryAfterOk(res)) stats.retryAfter503 += 1;
      else note('503 with Retry-After', `${instance.name} ${label}: 503 without Retry-After (${JSON.stringify(res.headers['retry-after'])})`);
    } else if (res.status >= 500) {
      note('never a 500', `${instance.name} ${label}: ${res.status} ${res.body.slice(0, 200)}`);
    }
    return res;
  }

  const pick = (n) => instances[n % instances.length];
  const liveInstances = () => instances.filter((i) => !i.exited && !killed.has(i.name));

  async function grant(instance, clientId, secret) {
    const res = await req(instance, 'POST', '/oauth/token', {
      headers: { Authorization: basic(clientId, secret), 'Content-Type': 'application/x-www-form-urlencoded' },
      body: form({ grant_type: 'client_credentials' }),
    }, 'POST /oauth/token');
    return res.status === 200 ? res.json.access_token : undefined;
  }

  async function setup() {
    for (let attempt = 0; attempt < 20 && !adminToken; attempt++) {
      adminToken = await grant(instances[0], admin.client_id, admin.client_secret);
      if (!adminToken) await sleep(500);
    }
    if (!adminToken) throw new Error('the admin could not get an access token');
  }

  /** Create an app; on 201 it is in the ledger, with an access token minted from it. */
  async function createApp(instance, n) {
    const res = await req(instance, 'POST', '/apps', {
      headers: jsonHeaders(adminToken),
      body: JSON.stringify({ name: `chaos-${n}`, scopes: SCOPES, token: { name: 'first' } }),
    });
    if (res.status !== 201) return undefined;
    const entry = { id: res.json.app.id, value: res.json.value, tokenId: res.json.token?.id, by: instance.name };
    ledger.apps.push(entry);
    entry.jwt = await grant(instance, entry.id, entry.value);
    return entry;
  }

  /** One step of a worker: mostly writes, some reads. */
  async function step(worker, n) {
    const instance = pick(worker + n);
    if (instance.exited || killed.has(instance.name)) {
      await sleep(50);
      return;
    }
    const live = ledger.apps.filter((a) => !a.deleted && !a.ambiguous);
    const r = n % 8;
    if (r === 0 || live.length < 4) {
      await createApp(instance, `${worker}-${n}`);
    } else if (r === 1) {
      const app = live[n % live.length];
      const res = await req(instance, 'POST', `/apps/${encodeURIComponent(app.id)}/tokens`, {
        headers: jsonHeaders(adminToken),
        body: JSON.stringify({ name: `extra-${n}` }),
      });
      if (res.status === 201) ledger.tokens.push({ appId: app.id, id: res.json.token.id, value: res.json.value, by: instance.name });
    } else if (r === 2) {
      const token = ledger.tokens.filter((t) => !t.deleted && !t.ambiguous && !ledger.apps.find((a) => a.id === t.appId)?.deleted)[n % 7];
      if (!token) return;
      const res = await req(instance, 'POST', `/apps/${encodeURIComponent(token.appId)}/tokens/${encodeURIComponent(token.id)}/regenerate`, {
        headers: jsonHeaders(adminToken),
      });
      // Not acknowledged: it may or may not have happened, so the token's value is unknown now.
      if (res.status === 0 || res.status >= 500) token.ambiguous = true;
      if (res.status === 200) {
        ledger.regenerations.push({ appId: token.appId, id: token.id, oldValue: token.value, newValue: res.json.value, by: instance.name });
        token.value = res.json.value;
        // The old value dies at once (no grace period) on the instance that acknowledged it.
        const old = await req(instance, 'GET', '/notarizations/stamps', { headers: bearer(ledger.regenerations.at(-1).oldValue) });
        if (old.status === 200) note('no revoked credential accepted', `${instance.name}: a regenerated token's old value got 200 right after the 200 of its regeneration`);
      }
    } else if (r === 3) {
      const token = ledger.tokens.filter((t) => !t.deleted && !t.ambiguous)[n % 5];
      if (!token) return;
      const res = await req(instance, 'DELETE', `/apps/${encodeURIComponent(token.appId)}/tokens/${encodeURIComponent(token.id)}`, {
        headers: bearer(adminToken),
      });
      if (res.status === 0 || res.status >= 500) token.ambiguous = true;
      if (res.status === 204) {
        token.deleted = true;
        const again = await req(instance, 'GET', '/notarizations/stamps', { headers: bearer(token.value) });
        if (again.status === 200) note('no revoked credential accepted', `${instance.name}: a deleted token got 200 right after the 204 of its deletion`);
      }
    } else if (r === 4 && live.length > 6) {
      // An app a scenario keeps for itself (`keep`) is never deleted by the load.
      const deletable = live.filter((a) => !a.keep);
      const app = deletable[n % deletable.length];
      if (!app) return;
      const res = await req(instance, 'DELETE', `/apps/${encodeURIComponent(app.id)}`, { headers: bearer(adminToken) });
      if (res.status === 0 || res.status >= 500) app.ambiguous = true;
      if (res.status === 204) {
        app.deleted = true;
        if (app.jwt) {
          const again = await req(instance, 'GET', '/notarizations/stamps', { headers: bearer(app.jwt) });
          if (again.status === 200) note('no revoked credential accepted', `${instance.name}: a deleted app's access token got 200 right after the 204 of its deletion`);
        }
      }
    } else {
      const app = live[n % live.length];
      if (app?.jwt) await req(instance, 'GET', '/notarizations/stamps', { headers: bearer(app.jwt) });
      if (app) await grant(instance, app.id, app.value);
    }
  }

  /** Run `workers` loops until stop() or `maxMs`. Bounded by time. */
  function start(workers = 6, maxMs = 180_000) {
    stopped = false;
    const until = Date.now() + maxMs;
    const loops = Array.from({ length: workers }, async (_, w) => {
      for (let n = 0; !stopped && Date.now() < until; n++) await step(w, n);
    });
    const all = Promise.all(loops);
    return {
      async stop() {
        stopped = true;
        await all;
      },
    };
  }

  /**
   * After recovery: every acknowledged write is there, and no revoked credential works, on every
   * instance still running. Returns the number of checks made.
   */
  async function verifyLedger({ limit = 400 } = {}) {
    let checks = 0;
    const targets = liveInstances();
    if (targets.length === 0) {
      note('no acknowledged write lost', 'no instance left running to check the ledger on');
      return 0;
    }
    const on = (k) => targets[k % targets.length];
    const sample = (list) => (list.length <= limit ? list : list.filter((_, i) => i % Math.ceil(list.length / limit) === 0));
    let k = 0;
    for (const app of sample(ledger.apps)) {
      const instance = on(k++);
      const res = await req(instance, 'GET', `/apps/${encodeURIComponent(app.id)}`, { headers: bearer(adminToken) });
      checks += 1;
      if (app.deleted && res.status === 200) note('no acknowledged write lost', `${instance.name}: app ${app.id} was deleted (204) but GET /apps/:id is 200`);
      if (!app.deleted && !app.ambiguous && res.status === 404) note('no acknowledged write lost', `${instance.name}: app ${app.id} was created (201 from ${app.by}) but GET /apps/:id is 404`);
      if (!app.deleted && !app.ambiguous) {
        // Its first token (never regenerated or deleted by the load) still works as a bearer.
        const first = await req(instance, 'GET', '/notarizations/stamps', { headers: bearer(app.value) });
        checks += 1;
        if (first.status === 401) note('no acknowledged write lost', `${instance.name}: the first token of app ${app.id} (201 from ${app.by}) got 401`);
      }
      if (app.deleted && app.jwt) {
        for (const i of targets) {
          const again = await req(i, 'GET', '/notarizations/stamps', { headers: bearer(app.jwt) });
          checks += 1;
          if (again.status === 200) note('no revoked credential accepted', `${i.name}: the access token of deleted app ${app.id} got 200 after recovery`);
        }
      }
    }
    for (const token of sample(ledger.tokens)) {
      const instance = on(k++);
      const appDeleted = ledger.apps.find((a) => a.id === token.appId)?.deleted;
      const res = await req(instance, 'GET', '/notarizations/stamps', { headers: bearer(token.value) });
      checks += 1;
      if ((token.deleted || appDeleted) && res.status === 200) {
        note('no revoked credential accepted', `${instance.name}: token ${token.id} was deleted (or its app) but its value got 200`);
      }
      const appAmbiguous = ledger.apps.find((a) => a.id === token.appId)?.ambiguous;
      if (!token.deleted && !token.ambiguous && !appDeleted && !appAmbiguous && res.status === 401) {
        note('no acknowledged write lost', `${instance.name}: token ${token.id} (201 from ${token.by}) got 401 with its last acknowledged value`);
      }
    }
    for (const regen of sample(ledger.regenerations)) {
      for (const i of targets) {
        const res = await req(i, 'GET', '/notarizations/stamps', { headers: bearer(regen.oldValue) });
        checks += 1;
        if (res.status === 200) note('no revoked credential accepted', `${i.name}: the old value of regenerated token ${regen.id} got 200 after recovery`);
      }
    }
    return checks;
  }

  /** Poll a write (POST /apps) on each running instance until 201; returns ms taken, per instance. */
  async function awaitWrites(withinMs) {
    const took = {};
    const started = Date.now();
    for (const instance of liveInstances()) {
      let n = 0;
      for (;;) {
        const app = await createApp(instance, `recovery-${instance.name}-${n++}`);
        if (app) {
          took[instance.name] = Date.now() - started;
          break;
        }
        if (Date.now() - started > withinMs) {
          note('writes resume by themselves', `${instance.name}: no write succeeded within ${withinMs} ms of the cause being gone`);
          took[instance.name] = undefined;
          break;
        }
        await sleep(500);
      }
    }
    return took;
  }

  return {
    stats,
    violations,
    ledger,
    killed,
    setup,
    start,
    req,
    grant,
    createApp,
    verifyLedger,
    awaitWrites,
    note,
    get adminToken() {
      return adminToken;
    },
  };
}
