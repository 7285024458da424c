// `registry:storage/blobs` (wit/blobs.wit) on the Durable Object's SQLite
// tables. The store hashes an upload's bytes natively (node:crypto) as they
// are stored, and keeps the hash state in memory between the requests of an
// upload; after the Durable Object was evicted or restarted, the next append
// or commit hashes the stored parts again (`rehashed` counts those bytes).
//
// Everything runs in the one Durable Object, one request at a time between
// awaits, so `delete-if-older`, `touch` and `commit` are atomic with each
// other; the Object also sees every stream it handed out, so a second
// `append` stream is a `conflict`, and a deleted blob's parts stay until its
// last open read stream is dropped.
//
// With an R2 bucket (`r2`, see r2.js) a commit copies the upload's rows into
// an R2 object, and the blob's bytes are read from there; its `blobs` row is
// written only after the copy, so other requests may run meanwhile (the awaits
// are R2's). An upload being copied takes no appends and no second commit
// (`conflict`); an abort meanwhile wins, and the commit then answers
// `not-found`. Blobs committed before the bucket was bound, and those over
// R2_MAX_PUT, keep their rows.

import { createHash } from 'node:crypto';
import { ioErrorCreate } from '@bytecodealliance/preview2-shim/io';
import { now } from './tables.js';
import { appendStream, bodyStream, readStream } from './streams.js';
import { R2_MAX_PUT } from './r2.js';
import {
  checkDigest,
  checkUploadId,
  conflict,
  digestMismatch,
  guarded,
  invalid,
  notFound,
  other,
  storageFailure,
} from './errors.js';

export function blobsInterface(tables, stats = { rehashed: 0 }, r2 = undefined) {
  const readers = new Map(); // content id -> open read streams
  const doomed = new Set(); // content ids of blobs deleted while being read
  const appending = new Set(); // ids of uploads with an open append stream
  const committing = new Set(); // ids of uploads being copied into R2
  const hashes = new Map(); // upload id -> { hash, size }: the hash of its stored bytes
  const failures = new WeakMap(); // stream error -> the store's own error

  tables.dropOrphanParts(new Set());

  function hold(content) {
    readers.set(content, (readers.get(content) ?? 0) + 1);
  }

  function release(content) {
    const left = readers.get(content) - 1;
    if (left > 0) {
      readers.set(content, left);
      return;
    }
    readers.delete(content);
    if (doomed.delete(content)) {
      guarded(() => dropContent(content));
    }
  }

  // A blob's bytes, in rows or in R2.
  function dropContent(content) {
    tables.dropContent(content);
    r2?.drop(content);
  }

  // Removes a blob's bytes, or leaves them to its last reader.
  function dropBytes(content) {
    if (readers.has(content)) {
      doomed.add(content);
    } else {
      dropContent(content);
    }
  }

  // Removes the blob `digest` if it exists and meets `condition` (SQL on its
  // row, with `bindings`); whether it did.
  function removeBlob(digest, condition, ...bindings) {
    checkDigest(digest);
    return guarded(() =>
      tables.atomically(() => {
        const row = tables.first(`SELECT content FROM blobs WHERE digest = ? ${condition}`, digest, ...bindings);
        if (!row) {
          return false;
        }
        tables.write('DELETE FROM blobs WHERE digest = ?', digest);
        dropBytes(row.content);
        return true;
      }),
    );
  }

  // A page of `query`'s rows: those after `after` (any string), at most `limit`.
  function page(query, after, limit) {
    return guarded(() => tables.rows(query, after ?? '', limit));
  }

  function blobSize(digest) {
    return tables.first('SELECT size FROM blobs WHERE digest = ?', digest)?.size;
  }

  function uploadRow(id) {
    return tables.first('SELECT content, size FROM uploads WHERE id = ?', id);
  }

  function liveUpload(id) {
    const row = guarded(() => uploadRow(id));
    if (!row) {
      throw notFound();
    }
    return row;
  }

  // The hash of the upload's stored bytes: the one kept since they were
  // stored, or computed again from the parts.
  function hashState(id, row) {
    const kept = hashes.get(id);
    if (kept && kept.size === row.size) {
      return kept;
    }
    const state = { hash: createHash('sha256'), size: 0 };
    for (const bytes of tables.parts(row.content)) {
      state.hash.update(bytes);
      state.size += bytes.length;
    }
    stats.rehashed += state.size;
    hashes.set(id, state);
    return state;
  }

  function forgetUpload(id, content) {
    hashes.delete(id);
    tables.atomically(() => {
      tables.write('DELETE FROM uploads WHERE id = ?', id);
      tables.dropContent(content);
    });
  }

  // Stores `bytes` as the upload's next part; on failure the upload is gone
  // and the stream error carries the store's error for `append-failure`.
  function storePart(id, content, state, bytes) {
    try {
      tables.atomically(() => {
        const grown = tables.write(
          'UPDATE uploads SET size = size + ?, modified = ? WHERE id = ? AND size = ?',
          bytes.length,
          now(),
          id,
          state.size,
        );
        if (grown === 0) {
          throw other('the upload was aborted or committed while being appended to');
        }
        tables.addPart(content, state.size, bytes);
      });
    } catch (error) {
      const failure = error?.tag ? error : storageFailure(error);
      try {
        forgetUpload(id, content);
      } catch {
        // The parts go with the next start-up's sweep of orphans.
      }
      const streamError = ioErrorCreate(`upload ${id}: ${failure.val ?? failure.tag}`);
      failures.set(streamError, failure);
      throw { tag: 'last-operation-failed', val: streamError };
    }
    state.hash.update(bytes);
    state.size += bytes.length;
  }

  // The rows of content `content` (`size` bytes), one at a time, each read
  // when wanted: other requests may write between two.
  function* rowsOf(content, size) {
    for (let offset = 0; offset < size; ) {
      const part = guarded(() => tables.partAt(content, offset));
      if (!part || part.offset !== offset) {
        throw other(`upload bytes missing at ${offset}`);
      }
      yield part.bytes;
      offset += part.bytes.length;
    }
  }

  // Commits the upload `id` (its `row`), whose bytes hash to `digest`, by
  // copying them into a new R2 object, which then becomes the blob `digest`
  // in one transaction (or, if that blob was committed meanwhile, is dropped
  // and the blob touched).
  async function commitToR2(id, row, digest) {
    const content = guarded(() => tables.newContentId());
    let failure;
    committing.add(id);
    try {
      await r2.store(content, row.size, digest.slice('sha256:'.length), rowsOf(row.content, row.size));
    } catch (error) {
      failure = error;
    } finally {
      committing.delete(id);
    }
    const aborted = guarded(() => uploadRow(id)) === undefined;
    if (aborted) {
      guarded(() => tables.dropContent(row.content));
    }
    if (failure) {
      throw failure;
    }
    if (aborted) {
      r2.drop(content);
      throw notFound();
    }
    return guarded(() =>
      tables.atomically(() => {
        tables.write('DELETE FROM uploads WHERE id = ?', id);
        tables.dropContent(row.content);
        const stored = blobSize(digest);
        if (stored !== undefined) {
          r2.drop(content);
          tables.write('UPDATE blobs SET touched = ? WHERE digest = ?', now(), digest);
          return BigInt(stored);
        }
        tables.write(
          'INSERT INTO blobs (digest, content, size, touched) VALUES (?, ?, ?, ?)',
          digest,
          content,
          row.size,
          now(),
        );
        return BigInt(row.size);
      }),
    );
  }

  class Upload {
    #id;

    constructor(id) {
      this.#id = id;
    }

    static start() {
      const id = crypto.randomUUID();
      guarded(() =>
        tables.atomically(() => {
          const content = tables.newContentId();
          tables.write('INSERT INTO uploads (id, content, size, modified) VALUES (?, ?, 0, ?)', id, content, now());
        }),
      );
      hashes.set(id, { hash: createHash('sha256'), size: 0 });
      return new Upload(id);
    }

    static resume(id) {
      checkUploadId(id);
      liveUpload(id);
      return new Upload(id);
    }

    id() {
      return this.#id;
    }

    size() {
      return BigInt(liveUpload(this.#id).size);
    }

    append() {
      const id = this.#id;
      const row = liveUpload(id);
      if (appending.has(id) || committing.has(id)) {
        throw conflict();
      }
      const state = guarded(() => hashState(id, row));
      appending.add(id);
      return appendStream(
        (bytes) => storePart(id, row.content, state, bytes),
        () => appending.delete(id),
      );
    }

    appendFailure(error) {
      return failures.get(error);
    }

    commit(expectedDigest) {
      checkDigest(expectedDigest);
      const id = this.#id;
      const row = liveUpload(id);
      if (committing.has(id)) {
        throw conflict();
      }
      return guarded(() => {
        const actual = `sha256:${hashState(id, row).hash.digest('hex')}`;
        hashes.delete(id);
        if (actual !== expectedDigest) {
          forgetUpload(id, row.content);
          throw digestMismatch(actual);
        }
        if (r2 && row.size <= R2_MAX_PUT && blobSize(actual) === undefined) {
          return commitToR2(id, row, actual);
        }
        return tables.atomically(() => {
          tables.write('DELETE FROM uploads WHERE id = ?', id);
          const stored = blobSize(actual);
          if (stored !== undefined) {
            // One copy: the blob stays, and the commit touches it.
            tables.dropContent(row.content);
            tables.write('UPDATE blobs SET touched = ? WHERE digest = ?', now(), actual);
            return BigInt(stored);
          }
          tables.write(
            'INSERT INTO blobs (digest, content, size, touched) VALUES (?, ?, ?, ?)',
            actual,
            row.content,
            row.size,
            now(),
          );
          return BigInt(row.size);
        });
      });
    }

    abort() {
      const id = this.#id;
      guarded(() => {
        const row = uploadRow(id);
        hashes.delete(id);
        if (!row) {
          return;
        }
        if (committing.has(id)) {
          // Its commit is copying the rows: it drops them when done.
          tables.write('DELETE FROM uploads WHERE id = ?', id);
        } else {
          forgetUpload(id, row.content);
        }
      });
    }
  }

  return {
    Upload,

    stat(digest) {
      checkDigest(digest);
      const row = guarded(() => tables.first('SELECT size FROM blobs WHERE digest = ?', digest));
      return row && BigInt(row.size);
    },

    read(digest, offset, length) {
      checkDigest(digest);
      const row = guarded(() => tables.first('SELECT content, size FROM blobs WHERE digest = ?', digest));
      if (!row) {
        return undefined;
      }
      const size = BigInt(row.size);
      if (offset > size) {
        throw invalid(`offset ${offset} is past the end of ${digest} (${size} bytes)`);
      }
      const end = length === undefined || offset + length > size ? size : offset + length;
      const key = r2 && end > offset ? guarded(() => r2.keyOf(row.content)) : undefined;
      hold(row.content);
      const onDrop = () => release(row.content);
      if (key === undefined) {
        return readStream(tables, row.content, Number(offset), Number(end), onDrop);
      }
      return r2.open(key, Number(offset), Number(end - offset)).then(
        (body) => bodyStream(body, onDrop),
        (error) => {
          onDrop();
          throw error;
        },
      );
    },

    redirect(digest) {
      // Rows have no URL of their own: every blob goes through `read`.
      checkDigest(digest);
      return undefined;
    },

    delete(digest) {
      return removeBlob(digest, '');
    },

    list(after, limit) {
      const rows = page('SELECT digest, size, touched FROM blobs WHERE digest > ? ORDER BY digest LIMIT ?', after, limit);
      return rows.map((row) => ({ digest: row.digest, size: BigInt(row.size), touched: BigInt(row.touched) }));
    },

    touch(digest) {
      checkDigest(digest);
      return guarded(() => tables.write('UPDATE blobs SET touched = ? WHERE digest = ?', now(), digest) > 0);
    },

    deleteIfOlder(digest, before) {
      // `before` may be beyond SQLite's integers: compared as a number.
      return removeBlob(digest, 'AND touched < ?', Number(before));
    },

    listUploads(after, limit) {
      const rows = page('SELECT id, size, modified FROM uploads WHERE id > ? ORDER BY id LIMIT ?', after, limit);
      return rows.map((row) => ({ id: row.id, size: BigInt(row.size), modified: BigInt(row.modified) }));
    },
  };
}
