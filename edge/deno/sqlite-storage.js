// A Durable Object's `ctx.storage`, as much of it as storage/tables.js uses
// (`sql.exec` and `transactionSync`), on a SQLite file through node:sqlite:
// the Worker's storage code runs unchanged under Deno.
//
// Durability: the database is in WAL mode with `synchronous = FULL`, so a
// write (or a transaction) is on disk when its statement returns, as the
// storage contract asks of a write acknowledged to a client.

import { DatabaseSync } from 'node:sqlite';

const READS = /^\s*(SELECT|WITH)\b/i;

// A result as `sql.exec` gives it: iterable (one row in memory at a time),
// `toArray()`, and `rowsWritten`. An iteration gets a statement of its own:
// running a statement again ends the iterations open on it.
function cursor(db, statement, query, bindings) {
  if (!READS.test(query)) {
    const { changes } = statement.run(...bindings);
    return { rowsWritten: Number(changes), toArray: () => [], [Symbol.iterator]: () => [][Symbol.iterator]() };
  }
  return {
    rowsWritten: 0,
    toArray: () => statement.all(...bindings),
    [Symbol.iterator]: () => db.prepare(query).iterate(...bindings),
  };
}

export function sqliteStorage(path) {
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;');
  const statements = new Map();
  const prepared = (query) => {
    let statement = statements.get(query);
    if (!statement) {
      statement = db.prepare(query);
      statements.set(query, statement);
    }
    return statement;
  };
  let depth = 0;
  return {
    sql: {
      exec(query, ...bindings) {
        // The schema: several statements, no bindings.
        if (bindings.length === 0 && query.trim().replace(/;\s*$/, '').includes(';')) {
          db.exec(query);
          return cursor(db, prepared('SELECT 1 WHERE 0'), 'SELECT 1 WHERE 0', []);
        }
        return cursor(db, prepared(query), query, bindings);
      },
    },
    // Runs `fn` in one transaction (nested calls join the outer one).
    transactionSync(fn) {
      if (depth > 0) {
        return fn();
      }
      db.exec('BEGIN IMMEDIATE');
      depth++;
      try {
        const result = fn();
        depth--;
        db.exec('COMMIT');
        return result;
      } catch (error) {
        depth--;
        // SQLite has rolled back already after some errors (SQLITE_FULL):
        // the error to report is the first one.
        try {
          db.exec('ROLLBACK');
        } catch {
          // No transaction left to roll back.
        }
        throw error;
      }
    },
    close() {
      db.close();
    },
  };
}
