// The storage contract over HTTP, for the contract suite only (the Worker
// routes here only with REGISTRY_STORAGE_CONTRACT=on): each request makes one
// call of wit/blobs.wit or wit/kv.wit on the Durable Object's storage, the
// same objects the registry component calls, as the component would call
// them (streams written, flushed and dropped; read to their end).
//
//   POST /_storage-contract/<store>/<call>?args=<JSON>   body: bytes, if the call takes some
//
// The answer is JSON, {"ok": value} or {"err": {"tag", "val"}}, with u64s as
// strings; `get` and `read-to-end` answer the bytes instead, with that JSON in
// the `contract-result` header. Uploads and read streams stay open in the
// Object between calls as numbered handles, as resources stay in an instance.
// The calls that may answer with a promise (../async-imports.js: R2's) are
// awaited, as the component waits for them.

import { isContractError } from './storage/errors.js';
import { concat } from './storage/streams.js';

const CHUNK = 64 * 1024;

function json(value) {
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
}

function answer(result, bytes) {
  if (bytes) {
    return new Response(bytes, { headers: { 'contract-result': json(result) } });
  }
  return new Response(json(result), { headers: { 'content-type': 'application/json' } });
}

const u64 = (value) => (value === undefined || value === null ? undefined : BigInt(value));

// Writes `bytes` to the upload's append stream as a caller does; the
// store's error, if the stream failed.
function append(upload, bytes) {
  const stream = upload.append();
  let failure;
  try {
    for (let offset = 0; offset < bytes.length; ) {
      const permit = Number(stream.checkWrite());
      const length = Math.min(permit, CHUNK, bytes.length - offset);
      stream.write(bytes.subarray(offset, offset + length));
      offset += length;
    }
    stream.blockingFlush();
  } catch (error) {
    if (error?.tag !== 'last-operation-failed') {
      throw error;
    }
    failure = error.val;
  } finally {
    stream[Symbol.dispose]();
  }
  if (failure) {
    throw upload.appendFailure(failure) ?? { tag: 'other', val: 'the append stream failed, not by the store' };
  }
}

async function readToEnd(stream) {
  const chunks = [];
  let length = 0;
  try {
    for (;;) {
      const bytes = await stream.blockingRead(1n << 20n);
      chunks.push(bytes.slice());
      length += bytes.length;
    }
  } catch (error) {
    if (error?.tag !== 'closed') {
      throw { tag: 'other', val: `stream: ${error?.val?.message ?? error}` };
    }
  } finally {
    stream[Symbol.dispose]();
  }
  return concat(chunks, length);
}

export async function contractCall(object, request) {
  const url = new URL(request.url);
  const call = url.pathname.split('/')[3];
  const args = JSON.parse(url.searchParams.get('args') ?? '{}');
  const body = new Uint8Array(await request.arrayBuffer());
  const { blobs, kv } = object.storage;
  const handles = object.handles;
  const keep = (value) => {
    const handle = (object.nextHandle = (object.nextHandle ?? 0) + 1);
    handles.set(handle, value);
    return handle;
  };
  const take = (handle) => {
    const value = handles.get(handle);
    handles.delete(handle);
    return value;
  };
  const upload = () => handles.get(args.upload);
  try {
    switch (call) {
      case 'stat':
        return answer({ ok: blobs.stat(args.digest) ?? null });
      case 'read': {
        const stream = await blobs.read(args.digest, u64(args.offset), u64(args.length));
        return answer({ ok: stream ? keep(stream) : null });
      }
      case 'read-to-end':
        return answer({ ok: null }, await readToEnd(take(args.handle)));
      case 'delete-blob':
        return answer({ ok: blobs.delete(args.digest) });
      case 'list':
        return answer({ ok: blobs.list(args.after ?? undefined, args.limit) });
      case 'touch':
        return answer({ ok: blobs.touch(args.digest) });
      case 'delete-if-older':
        return answer({ ok: blobs.deleteIfOlder(args.digest, u64(args.before)) });
      case 'list-uploads':
        return answer({ ok: blobs.listUploads(args.after ?? undefined, args.limit) });
      case 'start':
        return answer({ ok: keep(blobs.Upload.start()) });
      case 'resume':
        return answer({ ok: keep(blobs.Upload.resume(args.id)) });
      case 'id':
        return answer({ ok: upload().id() });
      case 'size':
        return answer({ ok: upload().size() });
      case 'append':
        append(upload(), body);
        return answer({ ok: null });
      case 'commit':
        return answer({ ok: await upload().commit(args.digest) });
      case 'abort':
        return answer({ ok: upload().abort() ?? null });
      case 'get': {
        const entry = kv.get(args.key);
        return answer({ ok: entry ? { version: entry.version } : null }, entry?.value ?? new Uint8Array());
      }
      case 'set':
        return answer({ ok: kv.set(args.key, body) });
      case 'set-if':
        return answer({ ok: kv.setIf(args.key, body, u64(args.expected)) });
      case 'delete':
        return answer({ ok: kv.delete(args.key) });
      case 'list-keys':
        return answer({ ok: kv.listKeys(args.prefix, args.after ?? undefined, args.limit) });
      default:
        return new Response(`unknown storage call ${call}\n`, { status: 404 });
    }
  } catch (error) {
    if (isContractError(error)) {
      return answer({ err: error });
    }
    return new Response(`${error?.stack ?? error}\n`, { status: 500 });
  }
}
