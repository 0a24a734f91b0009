//! What every stage shares: plain data types, errors, signal handling, image-reference grammar
//! and atomic file writes. Imports nothing else from the crate.

pub mod error;
pub mod fs;
pub mod hashing;
pub mod package_cache;
pub mod python;
pub mod reference;
pub mod retry;
pub mod signals;
pub mod types;
