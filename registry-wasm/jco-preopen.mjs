// Gives registry.wasm its data directory under `jco serve`, which has no --dir
// option: pass this module with `--jco-import`, and it preopens
// $REGISTRY_DATA_DIR (default ./data) as /data before the component runs.
//
//   REGISTRY_DATA_DIR=./data jco serve --port 5080 \
//     --jco-import registry-wasm/jco-preopen.mjs target/release/registry.wasm
//
// It must configure the very instance of @bytecodealliance/preview2-shim that
// jco's generated code imports. jco links that package into the directory of
// its generated runner (`<tmp>/node_modules`), and npm may install jco's copy
// below jco itself, next to an older top-level copy that another package
// wants: importing the package by name from here could load the wrong one. So
// the shim is found, in order: from the runner's directory (jco imports this
// module before the runner's own code runs, while process.argv[1] still names
// the runner), from $JCO_PREVIEW2_SHIM, or from jco's own installation.
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SHIM = join('node_modules', '@bytecodealliance', 'preview2-shim');

function findShim() {
  const candidates = [];
  if (process.argv[1]) candidates.push(join(dirname(resolve(process.argv[1])), SHIM));
  if (process.env.JCO_PREVIEW2_SHIM) candidates.push(process.env.JCO_PREVIEW2_SHIM);
  try {
    // From jco's entry point up: the copy that jco itself resolves.
    let dir = dirname(fileURLToPath(import.meta.resolve('@bytecodealliance/jco')));
    for (; dirname(dir) !== dir; dir = dirname(dir)) candidates.push(join(dir, SHIM));
  } catch {
    // jco is not resolvable from here: rely on the candidates above.
  }
  const found = candidates.find((dir) => existsSync(join(dir, 'package.json')));
  if (!found) {
    throw new Error(`jco-preopen: @bytecodealliance/preview2-shim not found (tried ${candidates.join(', ')})`);
  }
  return realpathSync(found);
}

const filesystem = join(findShim(), 'dist', 'nodejs', 'filesystem.js');
const { _setPreopens } = await import(pathToFileURL(filesystem).href);
_setPreopens({ '/data': resolve(process.env.REGISTRY_DATA_DIR || 'data') });
