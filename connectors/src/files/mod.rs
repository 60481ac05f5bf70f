//! Files: line files compressed by extension ([`LineReader`], [`LineWriter`],
//! [`find_input`]) and the replay of a recorded directory as a source ([`FileSource`]).

mod lines;
mod source;

pub use lines::{FileError, LineReader, LineWriter, find_input};
pub use source::{FileSource, input_files};
