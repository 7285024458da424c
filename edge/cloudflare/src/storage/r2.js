// Blob bytes in an R2 bucket (the Worker's binding REGISTRY_BLOBS), for
// blobs.js. An upload's bytes still arrive in SQLite rows (appends are
// synchronous writes of the component's streams); its commit copies them into
// one new R2 object, and reads are ranged gets of it. The SQLite tables stay
// the index: a blob exists when its `blobs` row does, written only once its
// object is complete, so a blob is never visible in part, and `touch`,
// `delete-if-older` and `commit` stay atomic with each other. Every object
// gets a key of its own, never reused, and is listed in `r2_objects` before
// it is written: an object that no blob owns (a commit cut short, a delete
// whose R2 call failed) is deleted at the next start (`sweep`).

import { guarded, isContractError, other, unavailable } from './errors.js';

// R2's limit for an object written in one put: 5 GiB less 5 MiB. A larger
// blob stays in rows.
export const R2_MAX_PUT = 5 * 1024 ** 3 - 5 * 1024 ** 2;

const failure = (what, error) => unavailable(`R2 ${what}: ${error?.message ?? error}`);

// `bucket` is the R2 binding; `background(promise)` keeps a promise that no
// request waits for (a delete) from being dropped.
export function r2Blobs(bucket, tables, background) {
  function keyOf(content) {
    return tables.first('SELECT key FROM r2_objects WHERE content = ?', content)?.key;
  }

  // Deletes the object of `content`, if it has one, then forgets it. Never
  // fails: if R2 or SQLite does, the row stays for the next start's sweep.
  function drop(content) {
    const warn = (error) => console.warn(`R2 object of ${content}: ${error?.message ?? error}; deleted at the next start`);
    let key;
    try {
      key = keyOf(content);
    } catch (error) {
      warn(error);
      return;
    }
    if (key !== undefined) {
      background(
        bucket
          .delete(key)
          .then(() => tables.write('DELETE FROM r2_objects WHERE content = ?', content))
          .catch(warn),
      );
    }
  }

  // Writes `parts` (the rows of `size` bytes, in order, one at a time) into a
  // new object for content `content`; R2 checks their SHA-256 against `hex`.
  async function store(content, size, hex, parts) {
    const key = `blobs/sha256/${hex}/${crypto.randomUUID()}`;
    guarded(() => tables.write('INSERT INTO r2_objects (content, key) VALUES (?, ?)', content, key));
    let writer;
    let put;
    try {
      // A stream of known length, as a put needs; its writes wait for R2 to
      // take each row, so one row at a time is in memory.
      const { readable, writable } = new FixedLengthStream(size);
      writer = writable.getWriter();
      put = bucket.put(key, readable, { sha256: hex });
      for await (const bytes of parts) {
        await writer.write(bytes);
      }
      await writer.close();
      await put;
    } catch (error) {
      writer?.abort(error).catch(() => {});
      put?.catch(() => {});
      drop(content);
      throw isContractError(error) ? error : failure(`put of ${key}`, error);
    }
  }

  // The body of `length` bytes (at least one) at `offset` of the object `key`.
  async function open(key, offset, length) {
    let object;
    try {
      object = await bucket.get(key, { range: { offset, length } });
    } catch (error) {
      throw failure(`get of ${key}`, error);
    }
    if (object === null) {
      throw other(`the R2 object ${key} is missing`);
    }
    return object.body;
  }

  // Deletes the objects that no blob owns (a new instance has no commit in
  // progress and no reader).
  function sweep() {
    const loose = tables.rows('SELECT content FROM r2_objects WHERE content NOT IN (SELECT content FROM blobs)');
    for (const { content } of loose) {
      drop(content);
    }
  }

  return { keyOf, drop, store, open, sweep };
}
