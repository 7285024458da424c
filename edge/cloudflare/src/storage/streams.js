// The wasi:io streams that `blobs.read` and `upload.append` hand out, as
// preview2-shim streams over the parts table or over an R2 object's body, so
// that the registry component (and the shim's splice) moves blob bytes
// without copying them through the component's memory.

import { inputStreamCreate, ioErrorCreate, outputStreamCreate, pollableCreate } from '@bytecodealliance/preview2-shim/io';
import { PART_SIZE } from './tables.js';

const closed = () => ({ tag: 'closed' });

// A stream of bytes [start, end) of content `content`, read one part (row) at
// a time. `onDrop` runs once, when the component drops it.
export function readStream(tables, content, start, end, onDrop) {
  let position = start;
  let part = null;
  function read(len) {
    if (position >= end) {
      throw closed();
    }
    if (!part || position < part.offset || position >= part.offset + part.bytes.length) {
      part = tables.partAt(content, position);
      if (!part || position >= part.offset + part.bytes.length) {
        throw { tag: 'last-operation-failed', val: ioErrorCreate(`blob bytes missing at ${position}`) };
      }
    }
    const from = position - part.offset;
    const count = Math.min(Number(len), part.bytes.length - from, end - position);
    position += count;
    return part.bytes.subarray(from, from + count);
  }
  return inputStreamCreate({
    read,
    blockingRead: read,
    subscribe: () => pollableCreate(),
    drop: onDrop,
  });
}

const promising = new WeakSet();

// Whether `stream` is one of bodyStream's, whose reads answer with promises.
export const answersWithPromises = (stream) => promising.has(stream);

// A stream of the bytes of `body` (a ReadableStream: an R2 object's). A read
// answers with a promise of at most `len` bytes, which the component waits
// for (JSPI, see ../async-imports.js): it gathers the body's chunks up to
// `len`, so that the component waits once per read, not once per chunk (a
// splice asks for about 1 MB). `onDrop` runs once, when the component drops it.
export function bodyStream(body, onDrop) {
  const reader = body.getReader();
  const pending = []; // chunks read from the body and not yet handed out
  let pendingLength = 0;
  let done = false;

  async function fill(want) {
    while (pendingLength < want && !done) {
      let next;
      try {
        next = await reader.read();
      } catch (error) {
        throw { tag: 'last-operation-failed', val: ioErrorCreate(`blob stream: ${error?.message ?? error}`) };
      }
      if (next.done) {
        done = true;
      } else {
        pending.push(next.value);
        pendingLength += next.value.length;
      }
    }
  }

  // The first `count` pending bytes (at least one), copied only when they
  // span chunks.
  function take(count) {
    pendingLength -= count;
    if (pending[0].length >= count) {
      const bytes = pending[0].subarray(0, count);
      pending[0] = pending[0].subarray(count);
      if (pending[0].length === 0) {
        pending.shift();
      }
      return bytes;
    }
    const bytes = new Uint8Array(count);
    for (let at = 0; at < count; ) {
      const chunk = pending[0];
      const n = Math.min(chunk.length, count - at);
      bytes.set(chunk.subarray(0, n), at);
      at += n;
      if (n === chunk.length) {
        pending.shift();
      } else {
        pending[0] = chunk.subarray(n);
      }
    }
    return bytes;
  }

  async function blockingRead(len) {
    const want = Number(len);
    await fill(want);
    if (pendingLength === 0) {
      if (done) {
        throw closed();
      }
      return new Uint8Array(0);
    }
    return take(Math.min(want, pendingLength));
  }

  const stream = inputStreamCreate({
    blockingRead,
    subscribe: () => pollableCreate(),
    drop() {
      reader.cancel().catch(() => {});
      onDrop();
    },
  });
  promising.add(stream);
  return stream;
}

// A stream that appends to an upload: bytes gather into parts of PART_SIZE,
// each stored (`store(bytes)`) when full, on flush and when the stream is
// dropped. A failed store ends the stream: `store` throws the stream error.
export function appendStream(store, onDrop) {
  let pending = [];
  let pendingLength = 0;
  let failed = false;
  function storePending() {
    if (pendingLength === 0) {
      return;
    }
    const bytes = pending.length === 1 ? pending[0] : concat(pending, pendingLength);
    pending = [];
    pendingLength = 0;
    try {
      store(bytes);
    } catch (error) {
      failed = true;
      throw error;
    }
  }
  return outputStreamCreate({
    checkWrite() {
      if (failed) {
        throw closed();
      }
      if (pendingLength >= PART_SIZE) {
        storePending();
      }
      return BigInt(PART_SIZE - pendingLength);
    },
    write(buf) {
      if (failed) {
        throw closed();
      }
      pending.push(buf);
      pendingLength += buf.byteLength;
      if (pendingLength >= PART_SIZE) {
        storePending();
      }
    },
    flush: storePending,
    blockingFlush: storePending,
    subscribe: () => pollableCreate(),
    drop() {
      try {
        if (!failed) {
          storePending();
        }
      } catch {
        // The store failed and released the upload: nothing left to keep.
      } finally {
        onDrop();
      }
    },
  });
}

// The chunks as one array of `length` bytes.
export function concat(chunks, length) {
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}
