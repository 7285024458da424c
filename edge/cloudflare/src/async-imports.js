// The component's imports that may answer with a promise, and its export that
// may therefore wait: build.mjs hands them to `jco transpile --async-mode jspi`.
// V8's JSPI (WebAssembly.Suspending and WebAssembly.promising, in workerd and
// Deno) then suspends the component on such a promise, while its storage calls
// stay synchronous in Rust. Only the R2 blob store (storage/r2.js) answers with
// promises: the Worker runs this transpile only with R2 (component.js), and
// jco's synchronous one, as before, without it and under Deno.
//
//   read, commit      an R2 ranged get, a copy of an upload's rows into R2
//   blocking-read     a read of an R2 blob stream (storage/streams.js, bodyStream)
//   blocking-splice   the same read, into the response's body (component.js)
export const ASYNC_IMPORTS = [
  'registry:storage/blobs#read',
  'registry:storage/blobs#[method]upload.commit',
  'wasi:io/streams#[method]input-stream.blocking-read',
  'wasi:io/streams#[method]output-stream.blocking-splice',
];

export const ASYNC_EXPORTS = ['wasi:http/incoming-handler#handle'];
