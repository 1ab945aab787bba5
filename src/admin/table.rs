//! Plain-text tables and times for the command line. Columns are aligned
//! by display width (`unicode-width`), so a Chinese name (two columns per
//! character) lines up with ASCII ones, and every cell is made printable
//! first: a description a customer typed cannot break a row with a line
//! break or reach the operator's terminal as an escape sequence. Pure.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Columns of text under a header, two spaces apart.
#[derive(Debug, Clone, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose first row is `header`.
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|name| name.to_string()).collect()],
        }
    }

    /// Adds a row (cells made printable).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.iter().map(|cell| printable(cell)).collect());
    }

    /// Every row on its own line, each column as wide as its widest cell;
    /// the last column is not padded.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(column))
                    .map(|cell| cell.width())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                if column > 0 {
                    line.push_str("  ");
                }
                if column + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&pad(cell, widths[column]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `text` followed by spaces up to `width` display columns.
pub fn pad(text: &str, width: usize) -> String {
    let missing = width.saturating_sub(text.width());
    format!("{text}{}", " ".repeat(missing))
}

/// `text` cut to at most `max` display columns, ending in "…" when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.width() <= max {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let width = c.width().unwrap_or(0);
        if used + width + 1 > max {
            break;
        }
        out.push(c);
        used += width;
    }
    out.push('…');
    out
}

/// `text` with control characters (line breaks, tabs, escape sequences'
/// ESC) replaced by a space.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A time as the command line shows it: in `zone` (the SLA calendar's, as
/// the console and the texts to customers use), to the second, with its
/// offset: `2026-11-30 10:00:00+08:00`.
pub fn local_time(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S%:z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn chinese_cells_line_up_with_ascii_ones() {
        let mut table = Table::new(&["NAME", "ROLE", "CREATED"]);
        table.row(vec!["王小明".into(), "agent".into(), "x".into()]);
        table.row(vec!["li.na".into(), "supervisor".into(), "y".into()]);
        table.row(vec!["欧阳娜娜 (夜班)".into(), "admin".into(), "z".into()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "NAME             ROLE        CREATED",
                "王小明           agent       x",
                "li.na            supervisor  y",
                "欧阳娜娜 (夜班)  admin       z",
            ]
        );
        // Every row's third column starts at the same display column.
        let starts: Vec<usize> = lines
            .iter()
            .map(|line| {
                let cut = line.rfind(' ').unwrap() + 1;
                line[..cut].width()
            })
            .collect();
        assert!(starts.iter().all(|&s| s == starts[0]), "{starts:?}");
    }

    #[test]
    fn cells_cannot_break_a_row_or_reach_the_terminal_raw() {
        let mut table = Table::new(&["A", "B"]);
        table.row(vec!["one\ntwo\x1b[2J".into(), "b".into()]);
        assert_eq!(table.render().lines().count(), 2);
        assert!(!table.render().contains('\x1b'));
    }

    #[test]
    fn truncation_counts_display_columns() {
        assert_eq!(truncate("宽带断了，灯一直闪", 9), "宽带断了…");
        assert_eq!(truncate("no dial tone", 20), "no dial tone");
        assert_eq!(truncate("no dial tone", 8), "no dial…");
        assert!(truncate("宽带断了，灯一直闪", 9).width() <= 9);
    }

    #[test]
    fn times_are_local_with_their_offset() {
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 2, 0, 0).unwrap();
        assert_eq!(
            local_time(at, chrono_tz::Asia::Shanghai),
            "2026-11-30 10:00:00+08:00"
        );
        assert_eq!(
            local_time(at, chrono_tz::America::New_York),
            "2026-11-29 21:00:00-05:00"
        );
    }
}
