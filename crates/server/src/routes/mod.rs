//! HTTP handlers, one module per surface.

pub mod admin;
pub mod api;
pub mod ops;
