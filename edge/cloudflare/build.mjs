// Builds the Worker from the bare registry component (the one that imports
// `registry:storage`), into OUT_DIR:
//
//   node edge/cloudflare/build.mjs NODE_MODULES COMPONENT OUT_DIR
//
// 1. jco transpiles the component to JavaScript plus core Wasm modules
//    (`--instantiation async`: the Worker hands it the modules, which workerd
//    must compile ahead, not from bytes at run time; no module inlined), and
//    a second time to JavaScript alone in JSPI mode, for the imports that may
//    answer with a promise (R2's, see src/async-imports.js): both share the
//    same core modules, and the Worker runs the second only with R2;
// 2. the modules lose their DWARF sections (`.debug_*`: the release profile
//    keeps them for profiling; they would make up most of the Worker's size);
// 3. core-modules.js imports each module by name, for component.js;
// 4. esbuild bundles src/worker.js with the transpiled code and the browser
//    build of preview2-shim into worker.js (the .wasm imports stay modules);
// 5. workerd.capnp, the configuration `scripts/serve.sh workerd` runs;
// 6. wrangler.jsonc: edge/cloudflare/wrangler.jsonc with `main` pointing at
//    the bundle beside it, for `wrangler dev` (scripts/serve.sh wrangler) and
//    `wrangler deploy --config` from here;
// 7. deno.js: edge/deno/server.js bundled the same way, for `deno serve`
//    (scripts/serve.sh deno), with the modules compiled from their files.
//
// NODE_MODULES holds edge/cloudflare/package-lock.json's packages.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ASYNC_EXPORTS, ASYNC_IMPORTS } from './src/async-imports.js';

const [modulesDir, component, outDir] = process.argv.slice(2).map((arg) => resolve(arg));
if (!outDir) {
  throw new Error('usage: node build.mjs NODE_MODULES COMPONENT OUT_DIR');
}
const here = dirname(fileURLToPath(import.meta.url));
const transpiled = join(outDir, 'registry');
const transpiledJspi = join(outDir, 'registry-jspi');

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const transpile = (out, ...flags) =>
  execFileSync(
    join(modulesDir, '.bin', 'jco'),
    ['transpile', component, '-o', out, '--name', 'registry', '--instantiation', 'async',
      '--base64-cutoff', '0', '--no-typescript', '--quiet', ...flags],
    { stdio: 'inherit' },
  );
transpile(transpiled);
transpile(transpiledJspi, '--async-mode', 'jspi', '--async-imports', ...ASYNC_IMPORTS,
  '--async-exports', ...ASYNC_EXPORTS);
for (const name of readdirSync(transpiledJspi).filter((name) => name.endsWith('.wasm'))) {
  if (!readFileSync(join(transpiledJspi, name)).equals(readFileSync(join(transpiled, name)))) {
    throw new Error(`jco's JSPI transpile has a core module of its own: ${name}`);
  }
  rmSync(join(transpiledJspi, name));
}

const wasmFiles = readdirSync(transpiled).filter((name) => name.endsWith('.wasm')).sort();
for (const name of wasmFiles) {
  const path = join(transpiled, name);
  writeFileSync(path, withoutDebugSections(readFileSync(path)));
}
writeFileSync(
  join(outDir, 'core-modules.js'),
  `${wasmFiles.map((name, i) => `import m${i} from './registry/${name}';`).join('\n')}
export default { ${wasmFiles.map((name, i) => `'${name}': m${i}`).join(', ')} };
`,
);

const { build } = await import(join(modulesDir, 'esbuild', 'lib', 'main.js'));

// Bundles `entry` into OUT_DIR/`outName` with the transpiled registry and the
// core modules of `coreModules` (a file of OUT_DIR).
function bundle(entry, outName, coreModules, external) {
  return build({
    entryPoints: [entry],
    outfile: join(outDir, outName),
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    // preview2-shim's browser build: Web APIs only, and its fetch-to-wasi:http adapter.
    conditions: ['browser', 'import'],
    mainFields: ['browser', 'module', 'main'],
    nodePaths: [modulesDir],
    alias: {
      'registry-transpiled': join(transpiled, 'registry.js'),
      'registry-transpiled-jspi': join(transpiledJspi, 'registry.js'),
      'registry-core-modules': join(outDir, coreModules),
    },
    external,
    logLevel: 'warning',
  });
}

await bundle(join(here, 'src', 'worker.js'), 'worker.js', 'core-modules.js', ['cloudflare:*', 'node:*', '*.wasm']);
writeFileSync(join(outDir, 'workerd.capnp'), workerdConfig(wasmFiles));
writeFileSync(join(outDir, 'wrangler.jsonc'), wranglerConfig());

// Deno compiles Wasm from bytes: its bundle reads the same modules from files.
writeFileSync(
  join(outDir, 'core-modules-deno.js'),
  `const load = (name) => new WebAssembly.Module(Deno.readFileSync(new URL('./registry/' + name, import.meta.url)));
export default { ${wasmFiles.map((name) => `'${name}': load('${name}')`).join(', ')} };
`,
);
await bundle(join(here, '..', 'deno', 'server.js'), 'deno.js', 'core-modules-deno.js', ['node:*']);

// The module without its custom sections named `.debug_*`.
function withoutDebugSections(bytes) {
  const kept = [bytes.subarray(0, 8)];
  let at = 8;
  while (at < bytes.length) {
    const start = at;
    const id = bytes[at++];
    let size = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = bytes[at++];
      size += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) break;
    }
    const end = at + size;
    let debug = false;
    if (id === 0) {
      let nameLength = 0;
      let p = at;
      for (let shift = 0; ; shift += 7) {
        const byte = bytes[p++];
        nameLength += (byte & 0x7f) * 2 ** shift;
        if (byte < 0x80) break;
      }
      debug = bytes.subarray(p, p + nameLength).toString().startsWith('.debug_');
    }
    if (!debug) kept.push(bytes.subarray(start, end));
    at = end;
  }
  return Buffer.concat(kept);
}

function wranglerConfig() {
  const config = readFileSync(join(here, 'wrangler.jsonc'), 'utf8');
  const main = /"main": "[^"]*"/;
  if (!main.test(config)) {
    throw new Error('wrangler.jsonc has no "main" line');
  }
  return `// Written by edge/cloudflare/build.mjs from edge/cloudflare/wrangler.jsonc,
// with \`main\` pointing at the bundle beside it.
${config.replace(main, '"main": "worker.js"')}`;
}

function workerdConfig(wasmNames) {
  const settings = readFileSync(join(here, 'src', 'settings.js'), 'utf8')
    .match(/export const SETTINGS = \[([^\]]*)\]/)[1]
    .match(/'[A-Z_]+'/g)
    .map((quoted) => quoted.slice(1, -1));
  const bindings = [...settings, 'REGISTRY_STORAGE_CONTRACT']
    .map((name) => `    (name = "${name}", fromEnvironment = "${name}"),`)
    .join('\n');
  const modules = wasmNames
    .map((name) => `    (name = "registry/${name}", wasm = embed "registry/${name}"),`)
    .join('\n');
  return `# workerd's configuration for the registry Worker, written by edge/cloudflare/build.mjs.
# scripts/serve.sh workerd runs it as
#   workerd serve workerd.capnp --socket-addr http=HOST:PORT --directory-path disk=DATA_DIR
# The settings are read from workerd's environment (fromEnvironment); the Durable
# Object's SQLite database is kept in the "disk" directory.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .registry),
    (name = "disk", disk = (path = "data", writable = true)),
  ],
  sockets = [(name = "http", address = "*:5080", http = (), service = "main")],
);

const registry :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
${modules}
  ],
  # node:crypto (nodejs_compat) is on by default from 2026-08-04.
  compatibilityDate = "2026-11-01",
  bindings = [
    (name = "REGISTRY", durableObjectNamespace = "Registry"),
${bindings}
  ],
  durableObjectNamespaces = [(className = "Registry", uniqueKey = "wasm-registry", enableSql = true)],
  durableObjectStorage = (localDisk = "disk"),
);
`;
}
