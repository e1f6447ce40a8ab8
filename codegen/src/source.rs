//! Source files and positions: byte offsets turned into `line:column`, with columns counted in
//! characters (not bytes), so a position inside a Cyrillic name in the 1C metadata points at the
//! right column in an editor.

use std::path::{Path, PathBuf};

/// A position in a source file: 1-based line and column (column counted in characters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// Index of the file in the model's source list (0 when there is only one).
    pub file: u32,
    pub line: u32,
    pub column: u32,
    pub offset: u64,
}

/// The bytes of one metadata file plus a line index for offset → line:column.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(memchr_newlines(text.as_bytes()));
        SourceFile {
            path: path.into(),
            text,
            line_starts,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Converts a byte offset into a position. Offsets past the end clamp to the end; offsets in the
    /// middle of a UTF-8 sequence count the partial character as started.
    pub fn pos(&self, file: u32, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line_idx = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line_idx];
        let bytes = &self.text.as_bytes()[start..offset];
        // Count characters: every byte that is not a UTF-8 continuation byte starts one.
        let chars = bytes.iter().filter(|b| (**b & 0xC0) != 0x80).count();
        Pos {
            file,
            line: line_idx as u32 + 1,
            column: chars as u32 + 1,
            offset: offset as u64,
        }
    }
}

fn memchr_newlines(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters_not_bytes() {
        let f = SourceFile::new("x.xml", "ab\nЖЖx\n".to_string());
        assert_eq!(
            f.pos(0, 0),
            Pos {
                file: 0,
                line: 1,
                column: 1,
                offset: 0
            }
        );
        // 'x' on line 2 is after two 2-byte Cyrillic letters: byte offset 3 + 4 = 7, column 3.
        let p = f.pos(0, 7);
        assert_eq!((p.line, p.column), (2, 3));
        let end = f.pos(0, 1000);
        assert_eq!((end.line, end.column), (3, 1));
    }
}
