// `registry:storage/kv` (wit/kv.wit) on the Durable Object's SQLite tables.
// A key's version is its previous version plus one (1 when new); `set-if`
// checks and writes in one transaction of the one Durable Object that holds
// the store, so exactly one of racing writers wins.

import { PART_SIZE } from './tables.js';
import { checkKey, checkPrefix, checkValue, conflict, guarded } from './errors.js';

export function kvInterface(tables) {
  function readValue(key, row) {
    if (row.value !== null) {
      return new Uint8Array(row.value);
    }
    const parts = tables.rows('SELECT data FROM kv_parts WHERE key = ? ORDER BY seq', key);
    const value = new Uint8Array(parts.reduce((length, part) => length + part.data.byteLength, 0));
    let offset = 0;
    for (const part of parts) {
      value.set(new Uint8Array(part.data), offset);
      offset += part.data.byteLength;
    }
    return value;
  }

  function version(key) {
    return tables.first('SELECT version FROM kv WHERE key = ?', key)?.version;
  }

  // Stores `value` as the key's next version; returns it.
  function store(key, value, current) {
    const next = (current ?? 0) + 1;
    tables.write('DELETE FROM kv_parts WHERE key = ?', key);
    const inline = value.length <= PART_SIZE;
    tables.write(
      `INSERT INTO kv (key, version, value) VALUES (?1, ?2, ?3)
       ON CONFLICT (key) DO UPDATE SET version = ?2, value = ?3`,
      key,
      next,
      inline ? value : null,
    );
    if (!inline) {
      for (let seq = 0; seq * PART_SIZE < value.length; seq++) {
        const part = value.subarray(seq * PART_SIZE, (seq + 1) * PART_SIZE);
        tables.write('INSERT INTO kv_parts (key, seq, data) VALUES (?, ?, ?)', key, seq, part);
      }
    }
    return BigInt(next);
  }

  return {
    get(key) {
      checkKey(key);
      return guarded(() => {
        const row = tables.first('SELECT version, value FROM kv WHERE key = ?', key);
        return row && { value: readValue(key, row), version: BigInt(row.version) };
      });
    },

    set(key, value) {
      checkKey(key);
      checkValue(value);
      return guarded(() => tables.atomically(() => store(key, value, version(key))));
    },

    setIf(key, value, expected) {
      checkKey(key);
      checkValue(value);
      return guarded(() =>
        tables.atomically(() => {
          const current = version(key);
          const matches = expected === undefined ? current === undefined : current === Number(expected);
          if (!matches) {
            throw conflict();
          }
          return store(key, value, current);
        }),
      );
    },

    delete(key) {
      checkKey(key);
      return guarded(() =>
        tables.atomically(() => {
          tables.write('DELETE FROM kv_parts WHERE key = ?', key);
          return tables.write('DELETE FROM kv WHERE key = ?', key) > 0;
        }),
      );
    },

    // Keys with `prefix` are contiguous in byte order, from `prefix` on: the
    // scan stops at the first key without it.
    listKeys(prefix, after, limit) {
      checkPrefix(prefix);
      return guarded(() => {
        const keys = [];
        if (limit === 0) {
          return keys;
        }
        const cursor = tables.sql.exec(
          'SELECT key FROM kv WHERE key >= ?1 AND (?2 IS NULL OR key > ?2) ORDER BY key',
          prefix,
          after ?? null,
        );
        for (const { key } of cursor) {
          if (!key.startsWith(prefix) || keys.length >= limit) {
            break;
          }
          keys.push(key);
        }
        return keys;
      });
    },
  };
}
