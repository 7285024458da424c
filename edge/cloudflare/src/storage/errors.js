// The contract's `error` variant (wit/types.wit) as jco lowers it: a storage
// function that fails throws one of these objects, and the component receives
// it as the `err` of its `result`. The checks here are the contract's rules
// on digests, upload ids and keys (wit/blobs.wit, wit/kv.wit).

export const notFound = () => ({ tag: 'not-found' });
export const conflict = () => ({ tag: 'conflict' });
export const invalid = (message) => ({ tag: 'invalid', val: message });
export const digestMismatch = (actual) => ({ tag: 'digest-mismatch', val: actual });
export const full = () => ({ tag: 'full' });
export const unavailable = (message) => ({ tag: 'unavailable', val: message });
export const other = (message) => ({ tag: 'other', val: message });

// Whether a value thrown is already one of the contract's errors.
export function isContractError(value) {
  return typeof value === 'object' && value !== null && typeof value.tag === 'string' && !(value instanceof Error);
}

// A failure of the Durable Object's storage as the contract's error: `full`
// when SQLite or the platform says the database has no room left (SQLITE_FULL,
// or the storage limit of the Durable Object), `other` for anything else.
export function storageFailure(error) {
  const message = String(error?.message ?? error);
  if (/SQLITE_FULL|database or disk is full|exceeded .*(storage|size)|storage limit/i.test(message)) {
    return full();
  }
  return other(`durable object storage: ${message}`);
}

// Runs `operation`; a storage exception becomes the contract's error (a
// contract error thrown on purpose passes through).
export function guarded(operation) {
  try {
    return operation();
  } catch (error) {
    throw isContractError(error) ? error : storageFailure(error);
  }
}

const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;

// `digest` if it is `sha256:<64 lowercase hex>`, else `invalid`.
export function checkDigest(digest) {
  if (!SHA256_DIGEST.test(digest)) {
    throw invalid(`not a sha256 digest: ${JSON.stringify(digest)}`);
  }
  return digest;
}

export const MAX_UPLOAD_ID_LEN = 64;
const UPLOAD_ID = /^[0-9a-f-]+$/;

// `id` if it could be an id this store issued, else `invalid`.
export function checkUploadId(id) {
  if (id.length === 0 || id.length > MAX_UPLOAD_ID_LEN || !UPLOAD_ID.test(id)) {
    throw invalid(`not an upload id: ${JSON.stringify(id)}`);
  }
  return id;
}

export const MAX_KEY_LEN = 1024;
export const MAX_VALUE_LEN = 4 * 1024 * 1024;
const encoder = new TextEncoder();

function checkSegment(segment) {
  if (segment === '' || segment === '.' || segment === '..') {
    throw invalid(`bad key segment ${JSON.stringify(segment)}`);
  }
}

// `key` if it is 1 to 1024 bytes of `/`-separated segments, none empty, `.`
// or `..`; else `invalid`. Segments have no other limit here: SQLite keeps any.
export function checkKey(key) {
  const length = encoder.encode(key).length;
  if (length === 0 || length > MAX_KEY_LEN) {
    throw invalid(`key must be 1 to ${MAX_KEY_LEN} bytes`);
  }
  key.split('/').forEach(checkSegment);
  return key;
}

// A listing prefix: its complete segments (those a `/` ends) must be ones a
// key could have.
export function checkPrefix(prefix) {
  const end = prefix.lastIndexOf('/');
  if (end >= 0) {
    prefix.slice(0, end).split('/').forEach(checkSegment);
  }
  return prefix;
}

export function checkValue(value) {
  if (value.length > MAX_VALUE_LEN) {
    throw invalid(`value of ${value.length} bytes is over ${MAX_VALUE_LEN}`);
  }
  return value;
}
