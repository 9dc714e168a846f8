//! Plain text tables for the listings: no borders, no colour, columns one
//! space apart, each at least as wide as it was when the command line padded
//! them by hand and wider when a value needs it. The output is the same on a
//! terminal and in a pipe: comfy-table is built without its terminal support
//! and never wraps.

use comfy_table::presets::NOTHING;
use comfy_table::{CellAlignment, ColumnConstraint, Table, Width};

/// A column of a table.
pub(crate) struct Column {
    heading: &'static str,
    alignment: CellAlignment,
    min_width: u16,
}

impl Column {
    /// A left-aligned column (text).
    pub(crate) const fn left(heading: &'static str, min_width: u16) -> Self {
        Self {
            heading,
            alignment: CellAlignment::Left,
            min_width,
        }
    }

    /// A right-aligned column (numbers).
    pub(crate) const fn right(heading: &'static str, min_width: u16) -> Self {
        Self {
            heading,
            alignment: CellAlignment::Right,
            min_width,
        }
    }
}

/// An empty table with `columns`' headings.
pub(crate) fn new(columns: &[Column]) -> Table {
    let mut table = Table::new();
    table
        .load_style(NOTHING)
        .set_header(columns.iter().map(|c| c.heading));
    let last = columns.len().saturating_sub(1);
    for (i, (spec, column)) in columns.iter().zip(table.column_iter_mut()).enumerate() {
        // One space after every column but the last; the minimum counts it.
        let gap = u16::from(i < last);
        column.set_padding((0, gap));
        column.set_cell_alignment(spec.alignment);
        column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(
            spec.min_width + gap,
        )));
    }
    table
}

/// The table as lines of text, without trailing spaces.
pub(crate) fn render(table: &Table) -> String {
    table.trim_fmt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_keep_their_width_and_grow_for_long_values() {
        let columns = [Column::left("NAME", 6), Column::right("N", 3)];
        let mut table = new(&columns);
        table.add_row(["a", "1"]).add_row(["b", "22"]);
        assert_eq!(render(&table), "NAME     N\na        1\nb       22");

        let long = "f".repeat(63);
        table.add_row([long.as_str(), "333"]);
        let rendered = render(&table);
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(lines[0], format!("NAME{}  N", " ".repeat(60)));
        assert_eq!(lines[3], format!("{long} 333"));
        assert!(lines.iter().all(|l| l.len() == 67), "{rendered}");
    }
}
