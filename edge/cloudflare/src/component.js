// The registry component, transpiled by jco (`--instantiation async`, see
// build.mjs), instantiated over preview2-shim's browser build for WASI and
// our own `registry:storage` interfaces. workerd compiles no Wasm from bytes
// at run time: the core modules come in as compiled modules of the Worker
// (`core-modules.js`, which build.mjs writes). With storage whose calls may
// answer with a promise (R2's), the component comes from jco's JSPI
// transpile, which suspends it on such a promise (async-imports.js); else
// from its synchronous one. Both run the same core modules.

import { instantiate } from 'registry-transpiled';
import { instantiate as instantiateJspi } from 'registry-transpiled-jspi';
import coreModules from 'registry-core-modules';
import * as shim from '@bytecodealliance/preview2-shim';
import { answersWithPromises } from './storage/streams.js';

// preview2-shim's blocking-splice reads its source synchronously; a stream of
// R2's answers a read with a promise, so a splice from one writes once that
// promise settles, and the component waits for it (blocking-splice is one of
// the async imports). Splices from every other stream are the shim's own.
const { OutputStream } = shim.io.streams;
const shimSplice = OutputStream.prototype.blockingSplice;
OutputStream.prototype.blockingSplice = function blockingSplice(source, len) {
  if (!answersWithPromises(source)) {
    return shimSplice.call(this, source, len);
  }
  const permit = this.checkWrite();
  return source.blockingRead(len < permit ? len : permit).then((bytes) => {
    this.write(bytes);
    return BigInt(bytes.byteLength);
  });
};

// `wasi:cli/terminal-input` -> shim.cli.terminalInput, and so on.
function wasiImports() {
  const imports = {};
  for (const [pkg, namespace] of Object.entries(shim)) {
    for (const [name, value] of Object.entries(namespace)) {
      const iface = name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
      imports[`wasi:${pkg}/${iface}`] = value;
    }
  }
  return imports;
}

const wasi = wasiImports();

// Sets the environment the component reads its settings from.
export function setEnvironment(vars) {
  shim.cli._setEnv(vars);
}

// A fresh instance of the registry on `storage` ({ blobs, kv }): its
// `wasi:http/incoming-handler`. `promises`: whether the storage's calls
// named in async-imports.js may answer with promises.
export async function instantiateRegistry(storage, { promises = false } = {}) {
  const imports = {
    ...wasi,
    'registry:storage/blobs': storage.blobs,
    'registry:storage/kv': storage.kv,
    'registry:storage/types': {},
  };
  const exports = await (promises ? instantiateJspi : instantiate)((name) => coreModules[name], imports);
  return exports.incomingHandler;
}
