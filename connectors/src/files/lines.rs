//! Line files, compression chosen by extension (`.zst` zstd, `.gz` gzip, else plain):
//! [`LineReader`] yields each line (without its newline) with its 1-based number and the
//! progress through the compressed file; [`LineWriter`] writes lines and finalizes the
//! compressor; [`find_input`] picks `stem.jsonl`, `.jsonl.zst` or `.jsonl.gz` in a directory.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A file could not be found, opened, read or written; every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot create {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("error reading {} at line {line}: {source}", path.display())]
    Read {
        path: PathBuf,
        line: u64,
        source: io::Error,
    },
    #[error("error writing {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("no input {stem}.jsonl, {stem}.jsonl.zst or {stem}.jsonl.gz in {}", dir.display())]
    NotFound { dir: PathBuf, stem: String },
    #[error(
        "no input in {}: none of traces.otlp.jsonl, metrics.otlp.jsonl or logs.otlp.jsonl (each may end in .zst or .gz)",
        dir.display()
    )]
    NoInputs { dir: PathBuf },
    #[error("{}: no such directory", dir.display())]
    NoDirectory { dir: PathBuf },
    #[error("{}: not a directory (the input is the directory that holds the files)", dir.display())]
    NotADirectory { dir: PathBuf },
}

/// How a file is compressed, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Plain,
    Zstd,
    Gzip,
}

impl Compression {
    fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("zst") => Compression::Zstd,
            Some("gz") => Compression::Gzip,
            _ => Compression::Plain,
        }
    }
}

/// Counts the bytes read from the underlying file.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads a (possibly compressed) file line by line.
pub struct LineReader {
    path: PathBuf,
    inner: Box<dyn BufRead + Send>,
    consumed: Arc<AtomicU64>,
    total: u64,
    line: u64,
}

impl std::fmt::Debug for LineReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineReader")
            .field("path", &self.path)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

const BUF_SIZE: usize = 256 * 1024;

impl LineReader {
    /// Opens `path`; `.zst` is read as zstd, `.gz` as gzip (multi-member), else plain.
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let open_err = |source| FileError::Open {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        let total = file.metadata().map_err(open_err)?.len();
        let consumed = Arc::new(AtomicU64::new(0));
        let raw = Counting {
            inner: file,
            count: Arc::clone(&consumed),
        };
        let inner: Box<dyn BufRead + Send> = match Compression::of(path) {
            Compression::Plain => Box::new(BufReader::with_capacity(BUF_SIZE, raw)),
            Compression::Zstd => Box::new(BufReader::with_capacity(
                BUF_SIZE,
                zstd::Decoder::new(raw).map_err(open_err)?,
            )),
            Compression::Gzip => Box::new(BufReader::with_capacity(
                BUF_SIZE,
                flate2::read::MultiGzDecoder::new(BufReader::new(raw)),
            )),
        };
        Ok(LineReader {
            path: path.to_owned(),
            inner,
            consumed,
            total,
            line: 0,
        })
    }

    /// Reads the next line (without the `\n` or `\r\n`) into `buf`, replacing its contents;
    /// returns its 1-based line number, or `None` at the end of the file.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<Option<u64>, FileError> {
        buf.clear();
        let n = self
            .inner
            .read_until(b'\n', buf)
            .map_err(|source| FileError::Read {
                path: self.path.clone(),
                line: self.line + 1,
                source,
            })?;
        if n == 0 {
            return Ok(None);
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        self.line += 1;
        Ok(Some(self.line))
    }

    /// Bytes of the underlying (compressed) file consumed so far, and its total size.
    pub fn progress(&self) -> (u64, u64) {
        (self.consumed.load(Ordering::Relaxed), self.total)
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

enum Sink {
    Plain(BufWriter<File>),
    Zstd(zstd::Encoder<'static, BufWriter<File>>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
}

impl Sink {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Plain(w) => w,
            Sink::Zstd(w) => w,
            Sink::Gzip(w) => w,
        }
    }

    fn finish(self) -> io::Result<()> {
        let mut file = match self {
            Sink::Plain(w) => w,
            Sink::Zstd(w) => w.finish()?,
            Sink::Gzip(w) => w.finish()?,
        };
        file.flush()
    }
}

/// Writes lines to a (possibly compressed) file. Call [`LineWriter::finish`] to flush and
/// finalize the compressor; dropping it does so too, best effort, ignoring errors.
pub struct LineWriter {
    path: PathBuf,
    sink: Option<Sink>,
}

impl std::fmt::Debug for LineWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LineWriter {
    /// Creates (truncates) `path`; `.zst` is written as zstd level 3, `.gz` as gzip.
    pub fn create(path: &Path) -> Result<Self, FileError> {
        let create_err = |source| FileError::Create {
            path: path.to_owned(),
            source,
        };
        let file = BufWriter::with_capacity(BUF_SIZE, File::create(path).map_err(create_err)?);
        let sink = match Compression::of(path) {
            Compression::Plain => Sink::Plain(file),
            Compression::Zstd => Sink::Zstd(zstd::Encoder::new(file, 3).map_err(create_err)?),
            Compression::Gzip => Sink::Gzip(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            )),
        };
        Ok(LineWriter {
            path: path.to_owned(),
            sink: Some(sink),
        })
    }

    fn write_err(&self, source: io::Error) -> FileError {
        FileError::Write {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes `line` and a `\n`.
    pub fn write_line(&mut self, line: &[u8]) -> Result<(), FileError> {
        let Some(sink) = self.sink.as_mut() else {
            return Err(self.write_err(io::Error::other("writer already finished")));
        };
        let w = sink.writer();
        let r = w.write_all(line).and_then(|()| w.write_all(b"\n"));
        r.map_err(|e| self.write_err(e))
    }

    /// Flushes buffered lines to the file (a compressed file stays open for more).
    pub fn flush(&mut self) -> Result<(), FileError> {
        match self.sink.as_mut() {
            Some(sink) => sink.writer().flush().map_err(|e| self.write_err(e)),
            None => Ok(()),
        }
    }

    /// Flushes and finalizes the compressor.
    pub fn finish(mut self) -> Result<(), FileError> {
        match self.sink.take() {
            Some(sink) => sink.finish().map_err(|e| self.write_err(e)),
            None => Ok(()),
        }
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            let _ = sink.finish();
        }
    }
}

/// Finds `dir/{stem}.jsonl`, `.jsonl.zst` or `.jsonl.gz`, the first that exists, e.g.
/// `find_input(dir, "traces.otlp")`.
pub fn find_input(dir: &Path, stem: &str) -> Result<PathBuf, FileError> {
    if !dir.exists() {
        return Err(FileError::NoDirectory {
            dir: dir.to_owned(),
        });
    }
    if !dir.is_dir() {
        return Err(FileError::NotADirectory {
            dir: dir.to_owned(),
        });
    }
    ["jsonl", "jsonl.zst", "jsonl.gz"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
        .ok_or_else(|| FileError::NotFound {
            dir: dir.to_owned(),
            stem: stem.to_owned(),
        })
}
