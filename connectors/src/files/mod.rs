//! Files: line files compressed by extension ([`LineReader`], [`LineWriter`],
//! [`find_input`]), the replay of a recorded directory (or of one file of any signals) as a
//! source ([`FileSource`]) and a look at the services its first lines name
//! ([`services_in_head`]).

mod head;
mod lines;
mod signal;
mod source;

pub use head::services_in_head;
pub use lines::{FileError, LineReader, LineWriter, find_input};
pub use source::{FileSource, InputFiles, input_files};
