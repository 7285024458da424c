// The registry component, transpiled by jco (`--instantiation async`, see
// build.mjs), instantiated over preview2-shim's browser build for WASI and
// our own `registry:storage` interfaces. workerd compiles no Wasm from bytes
// at run time: the core modules come in as compiled modules of the Worker
// (`core-modules.js`, which build.mjs writes).

import { instantiate } from 'registry-transpiled';
import coreModules from 'registry-core-modules';
import * as shim from '@bytecodealliance/preview2-shim';

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
// `wasi:http/incoming-handler`.
export async function instantiateRegistry(storage) {
  const imports = {
    ...wasi,
    'registry:storage/blobs': storage.blobs,
    'registry:storage/kv': storage.kv,
    'registry:storage/types': {},
  };
  const exports = await instantiate((name) => coreModules[name], imports);
  return exports.incomingHandler;
}
