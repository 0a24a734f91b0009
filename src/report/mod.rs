//! Everything the user sees while and after a run: the event vocabulary, the one reporter
//! (progress bars on a terminal, plain lines elsewhere), the summary (text or JSON) and the
//! lowest-level terminal writes.

pub mod event;
pub mod output;
pub mod progress;
pub mod summary;
