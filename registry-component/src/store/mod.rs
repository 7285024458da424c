//! Registry state kept in the host's kv store (`wit/kv.wit`).
//!
//! `keys` is the only module that builds kv keys; every other module that
//! reads or writes kv goes through it.

pub mod keys;
