//! Conversion from byte offsets to 1-based lines and columns, as people count them.

/// A 1-based line and column. Columns count Unicode characters, not bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineCol {
    pub line: u32,
    pub column: u32,
}

/// The start offset of every line of a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineIndex {
    line_starts: Vec<u32>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, byte)| byte == b'\n')
                .map(|(offset, _)| u32::try_from(offset + 1).unwrap_or(u32::MAX)),
        );
        LineIndex { line_starts }
    }

    /// The 0-based line containing `offset`.
    pub fn line_of(&self, offset: u32) -> usize {
        self.line_starts.partition_point(|&start| start <= offset).saturating_sub(1)
    }

    /// The 1-based line and character column of `offset` in `text` (the text this index was
    /// built from). Offsets past the end or inside a character are clamped.
    pub fn line_col(&self, text: &str, offset: u32) -> LineCol {
        let offset = (offset as usize).min(text.len());
        let line = self.line_of(offset as u32);
        let start = self.line_starts[line] as usize;
        let mut end = offset;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let column = text.get(start..end).map_or(0, |prefix| prefix.chars().count());
        LineCol { line: line as u32 + 1, column: column as u32 + 1 }
    }
}
