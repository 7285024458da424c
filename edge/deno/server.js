// The registry under Deno (`deno serve`): the Cloudflare Worker's registry
// (the bare registry component, transpiled by jco, on the storage code of
// edge/cloudflare/src/storage/) with a SQLite file of the data directory,
// through node:sqlite, in place of the Durable Object's database.
//
//   REGISTRY_DATA_DIR=DIR deno serve --host HOST --port PORT --allow-read --allow-write=DIR --allow-env deno.js
//
// (deno.js is this file bundled by edge/cloudflare/build.mjs; scripts/serve.sh
// deno runs it.) One process serves one registry, one request at a time
// between awaits, as the Durable Object does: a request's storage calls run
// synchronously inside the component, so every conditional write is exact.
// With REGISTRY_STORAGE_CONTRACT=on (tests only), `/_storage-contract/<store>/<call>`
// reaches the storage contract of a store of its own, a file of its own.

import { handleIncomingRequest } from '@bytecodealliance/preview2-shim/http';
import { Tables } from '../cloudflare/src/storage/tables.js';
import { kvInterface } from '../cloudflare/src/storage/kv.js';
import { blobsInterface } from '../cloudflare/src/storage/blobs.js';
import { instantiateRegistry, setEnvironment } from '../cloudflare/src/component.js';
import { contractCall } from '../cloudflare/src/contract-route.js';
import { settingsFrom } from '../cloudflare/src/settings.js';
import { sqliteStorage } from './sqlite-storage.js';

const dataDir = Deno.env.get('REGISTRY_DATA_DIR') || './data';
const contractRoute = Deno.env.get('REGISTRY_STORAGE_CONTRACT') === 'on';

// A store on the SQLite file `name` of the data directory, shaped as the
// Worker's Durable Object is for contract-route.js.
function openStore(name) {
  const tables = new Tables(sqliteStorage(`${dataDir}/${name}`));
  const stats = { rehashed: 0 };
  return { storage: { kv: kvInterface(tables), blobs: blobsInterface(tables, stats) }, stats, handles: new Map() };
}

Deno.mkdirSync(dataDir, { recursive: true });
setEnvironment(settingsFrom(Deno.env.toObject()));
const registry = openStore('registry.sqlite');
const contractStores = new Map();

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname.startsWith('/_storage-contract/')) {
      if (!contractRoute) {
        return new Response('not found\n', { status: 404 });
      }
      const name = url.pathname.split('/')[2];
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
        return new Response('bad store name\n', { status: 400 });
      }
      if (!contractStores.has(name)) {
        contractStores.set(name, openStore(`contract-${name}.sqlite`));
      }
      return contractCall(contractStores.get(name), request);
    }
    const handler = await instantiateRegistry(registry.storage);
    return handleIncomingRequest(request, (incoming, responseOut) => handler.handle(incoming, responseOut));
  },
};
