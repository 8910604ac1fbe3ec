//! The case file of `run --batch`, read a block of lines at a time by whichever worker
//! needs more cases: a batch of any size runs in the memory of a few blocks, and the
//! workers never wait for the whole file.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How many lines a worker takes at a time: a multiple of the stored runs' group.
pub(crate) const BLOCK: usize = 256;

/// A case file being read.
pub(crate) struct CaseFile {
    /// The reader, and the number of the next line (from 0).
    reader: Mutex<(BufReader<File>, usize)>,
    /// The file's size in bytes, and how many have been read.
    size: u64,
    read: AtomicU64,
    /// Set when a worker stopped on an error: the others take no more lines.
    stopped: AtomicBool,
}

/// A block of lines of a case file.
#[derive(Default)]
pub(crate) struct Block {
    text: Vec<u8>,
    /// Each non-blank line's number (from 0) and where it is in `text`, without its line
    /// ending.
    lines: Vec<(usize, Range<usize>)>,
}

impl Block {
    /// The block's non-blank lines, in order, with their numbers (from 0): their text, or
    /// why they are not text.
    pub(crate) fn lines(&self) -> impl Iterator<Item = (usize, Result<&str, &'static str>)> {
        self.lines.iter().map(|(i, range)| {
            let line = std::str::from_utf8(&self.text[range.clone()]).map_err(|_| "not UTF-8 text");
            (*i, line)
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

impl CaseFile {
    pub(crate) fn open(path: &str) -> std::io::Result<CaseFile> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        let reader = BufReader::with_capacity(1 << 20, file);
        Ok(CaseFile { reader: Mutex::new((reader, 0)), size, read: AtomicU64::new(0), stopped: AtomicBool::new(false) })
    }

    /// How far the file has been read: bytes read, of its size.
    pub(crate) fn read(&self) -> (u64, u64) {
        (self.read.load(Ordering::Relaxed), self.size)
    }

    /// Gives no more lines to anyone: a worker stopped on an error, and what is left of the
    /// file is not run.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Fills `block` with the next `BLOCK` non-blank lines (fewer at the end of the file,
    /// none after it or once stopped). Lines end with `\n` or `\r\n`, as [`str::lines`]
    /// splits them; a line of white space only is blank.
    pub(crate) fn next_block(&self, block: &mut Block) -> std::io::Result<()> {
        block.text.clear();
        block.lines.clear();
        if self.stopped.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut guard = self.reader.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (reader, next) = &mut *guard;
        while block.lines.len() < BLOCK {
            let start = block.text.len();
            let n = reader.read_until(b'\n', &mut block.text).map_err(|error| {
                // Where it stopped: the lines before were given out to run.
                std::io::Error::new(error.kind(), format!("line {}: {error}", *next + 1))
            })?;
            if n == 0 {
                break;
            }
            self.read.fetch_add(n as u64, Ordering::Relaxed);
            let mut end = block.text.len();
            if block.text[end - 1] == b'\n' {
                end -= 1;
                if end > start && block.text[end - 1] == b'\r' {
                    end -= 1;
                }
            }
            let number = *next;
            *next += 1;
            if blank(&block.text[start..end]) {
                block.text.truncate(start);
            } else {
                block.lines.push((number, start..end));
            }
        }
        Ok(())
    }
}

/// Whether a line is blank: white space only, as [`str::trim`] sees it.
fn blank(line: &[u8]) -> bool {
    match line.iter().position(|&b| !(b.is_ascii() && char::from(b).is_whitespace())) {
        None => true,
        Some(first) if line[first].is_ascii() => false,
        Some(first) => std::str::from_utf8(&line[first..]).is_ok_and(|rest| rest.trim().is_empty()),
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    /// A case file holding `content`, opened, under a name no other test uses (the caller
    /// removes it).
    fn case_file(content: &[u8]) -> (CaseFile, std::path::PathBuf) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("flow-cases-{}-{n}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        (CaseFile::open(path.to_str().unwrap()).unwrap(), path)
    }

    /// Every block of a file, read to its end, as (line number, text or why not).
    fn blocks(content: &[u8]) -> Vec<Vec<(usize, Result<String, &'static str>)>> {
        let (file, path) = case_file(content);
        let mut out = Vec::new();
        let mut block = Block::default();
        loop {
            file.next_block(&mut block).unwrap();
            if block.is_empty() {
                break;
            }
            out.push(block.lines().map(|(i, l)| (i, l.map(str::to_owned))).collect());
        }
        assert_eq!(file.read(), (content.len() as u64, content.len() as u64));
        std::fs::remove_file(&path).unwrap();
        out
    }

    #[test]
    fn lines_are_split_numbered_and_blank_ones_left_out_as_str_lines_does() {
        let cases: [&[u8]; 4] = [
            b"a\r\n\n  \t\nb\rc\nnot \xff utf-8\n\r\n\x0b\n\xc2\xa0\xe2\x80\x83\n\xc2\xa0x\nlast",
            b"one\r",
            b"\r\n\r\n",
            b"",
        ];
        for content in cases {
            let lines: Vec<_> = blocks(content).concat();
            // `str::lines` over the text, lines that are not UTF-8 marked as such.
            let text = String::from_utf8_lossy(content);
            let expected: Vec<_> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| (i, if l.contains('\u{fffd}') { Err("not UTF-8 text") } else { Ok(l.to_owned()) }))
                .collect();
            assert_eq!(lines, expected, "{}", text.escape_debug());
        }
    }

    #[test]
    fn a_large_file_comes_in_blocks_of_whole_lines() {
        let content: String = (0..BLOCK * 2 + 3).map(|i| format!("{{\"case\": {i}}}\n")).collect();
        let blocks = blocks(content.as_bytes());
        assert_eq!(blocks.iter().map(Vec::len).collect::<Vec<_>>(), vec![BLOCK, BLOCK, 3]);
        let last = blocks.concat().pop().unwrap();
        assert_eq!(last, (BLOCK * 2 + 2, Ok(format!("{{\"case\": {}}}", BLOCK * 2 + 2))));
    }

    #[test]
    fn a_stopped_file_gives_no_more_lines() {
        let (file, path) = case_file("{}\n".repeat(BLOCK * 2).as_bytes());
        let mut block = Block::default();
        file.next_block(&mut block).unwrap();
        assert_eq!(block.lines().count(), BLOCK);
        file.stop();
        file.next_block(&mut block).unwrap();
        assert!(block.is_empty());
        std::fs::remove_file(&path).unwrap();
    }
}
