// The Durable Object that holds the whole registry: its storage (SQLite in
// the Object, see storage/; blob bytes in R2 when the Worker has the R2
// binding REGISTRY_BLOBS) and the registry component that answers every
// request on it. One Object serves one registry, one request at a time
// between awaits: a request's storage calls run synchronously inside the
// component, so every conditional write is exact. With R2 the component also
// waits for R2's answers (async-imports.js), and other requests may run
// meanwhile; each storage call on SQLite still runs whole.

import { DurableObject } from 'cloudflare:workers';
import { handleIncomingRequest } from '@bytecodealliance/preview2-shim/http';
import { Tables } from './storage/tables.js';
import { kvInterface } from './storage/kv.js';
import { blobsInterface } from './storage/blobs.js';
import { r2Blobs } from './storage/r2.js';
import { instantiateRegistry, setEnvironment } from './component.js';
import { contractCall } from './contract-route.js';
import { settingsFrom } from './settings.js';

export class Registry extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    const tables = new Tables(ctx.storage);
    this.stats = { rehashed: 0 };
    // Deletes of R2 objects run after the request that made them; the Object
    // lives on meanwhile, and a delete cut short is done again at the next start.
    const r2 = env.REGISTRY_BLOBS && r2Blobs(env.REGISTRY_BLOBS, tables, (promise) => ctx.waitUntil(promise));
    this.storage = { kv: kvInterface(tables), blobs: blobsInterface(tables, this.stats, r2) };
    this.promises = r2 !== undefined;
    r2?.sweep();
    setEnvironment(settingsFrom(env));
    this.handles = new Map();
  }

  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname.startsWith('/_storage-contract/')) {
      return contractCall(this, request);
    }
    const handler = await instantiateRegistry(this.storage, { promises: this.promises });
    return handleIncomingRequest(request, (incoming, responseOut) => handler.handle(incoming, responseOut));
  }
}
