//! The attendance checks' tests: each flow of ADR 0004 through the checks (`flows`), and
//! `check_class` row by row (`table`).

mod flows;
mod table;
