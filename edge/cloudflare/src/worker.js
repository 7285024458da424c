// The Worker: every request goes to the one Durable Object that holds the
// registry (registry-object.js). With REGISTRY_STORAGE_CONTRACT=on (tests only),
// `/_storage-contract/<store>/<call>` reaches the storage contract of the
// Object named `<store>` instead (contract-route.js).

import { Registry } from './registry-object.js';

export { Registry };

const REGISTRY_OBJECT = 'registry';

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    let name = REGISTRY_OBJECT;
    if (url.pathname.startsWith('/_storage-contract/')) {
      if (env.REGISTRY_STORAGE_CONTRACT !== 'on') {
        return new Response('not found\n', { status: 404 });
      }
      name = `contract/${url.pathname.split('/')[2]}`;
    }
    return env.REGISTRY.get(env.REGISTRY.idFromName(name)).fetch(request);
  },
};
