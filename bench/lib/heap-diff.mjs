#!/usr/bin/env node
/**
 * Compare two V8 heap snapshots (from the soak's `--heapsnapshot DIR`): what grew between them,
 * by constructor, and for the nodes that grew, by what holds them.
 *
 *   node bench/lib/heap-diff.mjs A.heapsnapshot B.heapsnapshot [--top 25]
 *
 * Prints, sorted by growth of self size: count and self size per `type:name` (an object's name is
 * its constructor; strings, arrays, closures and V8's internal kinds are grouped by type), then
 * the same per `type:name <- holder` where holder is the first non-weak retainer's `type:name`
 * and the edge name, which is what tells a Map's backing store or a cached string apart. Self
 * sizes only (no dominator tree): enough to see which structure fills.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' } } });
if (positionals.length !== 2) {
  console.error('usage: node bench/lib/heap-diff.mjs A.heapsnapshot B.heapsnapshot [--top N]');
  process.exit(2);
}
const TOP = Number(values.top ?? 25) || 25;

function load(file) {
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  const { node_fields: nf, edge_fields: ef, node_types: nt, edge_types: et } = snap.snapshot.meta;
  const N = nf.length;
  const E = ef.length;
  const iType = nf.indexOf('type');
  const iName = nf.indexOf('name');
  const iSelf = nf.indexOf('self_size');
  const iEdges = nf.indexOf('edge_count');
  const eType = ef.indexOf('type');
  const eName = ef.indexOf('name_or_index');
  const eTo = ef.indexOf('to_node');
  const typeNames = nt[iType];
  const edgeTypeNames = et[eType];
  const { nodes, edges, strings } = snap;
  const count = nodes.length / N;
  const label = (i) => {
    const type = typeNames[nodes[i * N + iType]];
    if (type === 'object' || type === 'closure' || type === 'native' || type === 'hidden') {
      const name = strings[nodes[i * N + iName]];
      return `${type}:${name.length > 60 ? `${name.slice(0, 60)}…` : name}`;
    }
    return type;
  };
  // First strong retainer of each node.
  const holder = new Int32Array(count).fill(-1);
  const holderEdge = new Array(count);
  let edgeIndex = 0;
  for (let i = 0; i < count; i++) {
    const n = nodes[i * N + iEdges];
    for (let k = 0; k < n; k++, edgeIndex += E) {
      const et2 = edgeTypeNames[edges[edgeIndex + eType]];
      if (et2 === 'weak' || et2 === 'shortcut') continue;
      const to = edges[edgeIndex + eTo] / N;
      if (holder[to] === -1) {
        holder[to] = i;
        const nm = edges[edgeIndex + eName];
        holderEdge[to] = et2 === 'element' || et2 === 'hidden' ? `[${et2}]` : String(strings[nm] ?? nm);
      }
    }
  }
  const byLabel = new Map();
  const byHolder = new Map();
  for (let i = 0; i < count; i++) {
    const self = nodes[i * N + iSelf];
    const l = label(i);
    const a = byLabel.get(l) ?? { count: 0, size: 0 };
    a.count++;
    a.size += self;
    byLabel.set(l, a);
    const h = holder[i] >= 0 ? `${l} <- ${label(holder[i])} .${holderEdge[i]}` : `${l} <- (root)`;
    const b = byHolder.get(h) ?? { count: 0, size: 0 };
    b.count++;
    b.size += self;
    byHolder.set(h, b);
  }
  let total = 0;
  for (let i = 0; i < count; i++) total += nodes[i * N + iSelf];
  return { byLabel, byHolder, total, count };
}

function diff(title, a, b) {
  const keys = new Set([...a.keys(), ...b.keys()]);
  const rows = [...keys].map((k) => {
    const x = a.get(k) ?? { count: 0, size: 0 };
    const y = b.get(k) ?? { count: 0, size: 0 };
    return { k, dc: y.count - x.count, ds: y.size - x.size, c: y.count, s: y.size };
  });
  rows.sort((p, q) => q.ds - p.ds);
  console.log(`\n${title} (top ${TOP} by growth of self size)`);
  console.log(`${'Δ size'.padStart(10)} ${'Δ count'.padStart(9)} ${'size B'.padStart(10)} ${'count B'.padStart(9)}  what`);
  for (const r of rows.slice(0, TOP)) {
    console.log(
      `${(r.ds / 1024).toFixed(0).padStart(8)}KB ${String(r.dc).padStart(9)} ${(r.s / 1024).toFixed(0).padStart(8)}KB ${String(r.c).padStart(9)}  ${r.k}`,
    );
  }
}

const A = load(positionals[0]);
const B = load(positionals[1]);
console.log(`A: ${positionals[0]}: ${A.count} nodes, ${(A.total / 1048576).toFixed(1)} MB self`);
console.log(`B: ${positionals[1]}: ${B.count} nodes, ${(B.total / 1048576).toFixed(1)} MB self`);
diff('by type:constructor', A.byLabel, B.byLabel);
diff('by type:constructor <- first holder', A.byHolder, B.byHolder);
