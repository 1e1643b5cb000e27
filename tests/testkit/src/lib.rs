//! Test support shared by ngm's crates: where the project's Python tools live, and a moto
//! server that a test starts on 127.0.0.1 and that stops with it.

pub mod moto;
