//! Files: line files compressed by extension ([`LineReader`], [`LineWriter`],
//! [`find_input`]), the replay of a recorded directory as a source ([`FileSource`]) and a
//! look at the services its first lines name ([`services_in_head`]).

mod head;
mod lines;
mod source;

pub use head::services_in_head;
pub use lines::{FileError, LineReader, LineWriter, find_input};
pub use source::{FileSource, InputFiles, input_files};
