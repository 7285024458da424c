// The settings the component reads (README, "Configuring each deployment"):
// on Cloudflare the Worker's variables and secrets of these names, under Deno
// the process's environment variables. build.mjs reads this list to bind
// them in workerd's configuration.
export const SETTINGS = [
  'REGISTRY_AUTH_HTPASSWD',
  'REGISTRY_AUTH_POLICY',
  'REGISTRY_AUTH_REALM',
  'REGISTRY_AUTH_SERVICE',
  'REGISTRY_AUTH_TOKEN_KEY',
  'REGISTRY_AUTH_TOKEN_TTL',
  'REGISTRY_CLIENT_ADDRESS_HEADER',
  'REGISTRY_DELETE_ENABLED',
  'REGISTRY_GC_DELETE_UNTAGGED',
  'REGISTRY_GC_ENDPOINT',
  'REGISTRY_GC_GRACE',
  'REGISTRY_GC_UPLOAD_MAX_AGE',
];

// The values of SETTINGS that `source` (an object of strings) holds and are
// not empty.
export function settingsFrom(source) {
  const settings = {};
  for (const name of SETTINGS) {
    if (typeof source[name] === 'string' && source[name] !== '') {
      settings[name] = source[name];
    }
  }
  return settings;
}
