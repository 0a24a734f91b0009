//! Everything the user sees while and after a run: the event vocabulary, the one reporter
//! (progress bars on a terminal, plain lines elsewhere), the summary (text or JSON), the run's
//! clock and its picture (an HTML timeline with the critical path) and the lowest-level
//! terminal writes.

pub mod critical_path;
pub mod event;
pub mod output;
pub mod progress;
pub mod summary;
pub mod timeline;
pub mod timing;
