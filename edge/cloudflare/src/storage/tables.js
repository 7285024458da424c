// The Durable Object's SQLite tables and the row-level operations on them.
//
//   kv        key -> version and value; a value over PART_SIZE lives in kv_parts
//   blobs     digest -> content id, size, touched time (committed blobs)
//   uploads   id -> content id, size, modified time (uploads in progress)
//   parts     (content, offset) -> bytes: the bytes of blobs and uploads, in rows
//             of at most PART_SIZE (a row holds at most 2 MB)
//   r2_objects  content id -> key of the R2 object holding its bytes instead
//             (blobs committed with an R2 bucket bound, see r2.js); also the
//             objects written but not owned by a blob yet or any more, which
//             are deleted at the next start if not before
//   counters  the last content id handed out
//
// Without R2, a commit hands an upload's content id to its blob, so bytes are
// never copied; with R2 they are copied once, into the blob's object.
// All of it is one SQLite database, strongly consistent; writes made in one
// synchronous run (or in `transactionSync`) are atomic.

export const PART_SIZE = 1024 * 1024;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, version INTEGER NOT NULL, value BLOB);
CREATE TABLE IF NOT EXISTS kv_parts (key TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
  PRIMARY KEY (key, seq));
CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, content INTEGER NOT NULL,
  size INTEGER NOT NULL, touched INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (id TEXT PRIMARY KEY, content INTEGER NOT NULL,
  size INTEGER NOT NULL, modified INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS parts (content INTEGER NOT NULL, offset INTEGER NOT NULL, data BLOB NOT NULL,
  PRIMARY KEY (content, offset));
CREATE TABLE IF NOT EXISTS r2_objects (content INTEGER PRIMARY KEY, key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
`;

// Seconds since the epoch, rounded down, by the platform's clock.
export const now = () => Math.floor(Date.now() / 1000);

export class Tables {
  constructor(storage) {
    this.storage = storage;
    this.sql = storage.sql;
    this.sql.exec(SCHEMA);
  }

  // Runs `fn` as one transaction.
  atomically(fn) {
    return this.storage.transactionSync(fn);
  }

  rows(query, ...bindings) {
    return this.sql.exec(query, ...bindings).toArray();
  }

  first(query, ...bindings) {
    return this.rows(query, ...bindings)[0];
  }

  // Runs a write and returns how many rows it wrote.
  write(query, ...bindings) {
    const cursor = this.sql.exec(query, ...bindings);
    cursor.toArray();
    return cursor.rowsWritten;
  }

  newContentId() {
    this.write(`INSERT INTO counters (name, value) VALUES ('content', 1)
      ON CONFLICT (name) DO UPDATE SET value = value + 1`);
    return this.first(`SELECT value FROM counters WHERE name = 'content'`).value;
  }

  // Appends `bytes` (at most PART_SIZE) to content `content` at `offset`.
  addPart(content, offset, bytes) {
    this.write('INSERT INTO parts (content, offset, data) VALUES (?, ?, ?)', content, offset, bytes);
  }

  // The part of `content` holding byte `position`: { offset, bytes }.
  partAt(content, position) {
    const row = this.first(
      'SELECT offset, data FROM parts WHERE content = ? AND offset <= ? ORDER BY offset DESC LIMIT 1',
      content,
      position,
    );
    return row && { offset: row.offset, bytes: new Uint8Array(row.data) };
  }

  // Every part of `content`, in order (a cursor: one row in memory at a time).
  *parts(content) {
    for (const row of this.sql.exec('SELECT data FROM parts WHERE content = ? ORDER BY offset', content)) {
      yield new Uint8Array(row.data);
    }
  }

  dropContent(content) {
    this.write('DELETE FROM parts WHERE content = ?', content);
  }

  // Parts that no blob or upload owns (left by a restart while a stream still
  // read a deleted blob), except those of `held` content ids.
  dropOrphanParts(held) {
    const orphans = this.rows(
      `SELECT DISTINCT content FROM parts WHERE content NOT IN (SELECT content FROM blobs)
       AND content NOT IN (SELECT content FROM uploads)`,
    );
    for (const { content } of orphans) {
      if (!held.has(content)) {
        this.dropContent(content);
      }
    }
  }
}
