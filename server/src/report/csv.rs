//! The report as CSV.

use super::MonthlyReport;
use super::layout::{DETAIL_HEADERS, audit_line, detail_row, summary_rows, title, trim_number};

/// The report as CSV (UTF-8 with a byte-order mark, so Excel reads the Chinese): a title line, the
/// summary as (项目, 指标, 数值), then the places, then the audit chain's head. Every cell is
/// neutralised ([`cell`]): a class title typed as a formula stays text when Excel opens the file.
pub(crate) fn to_csv(r: &MonthlyReport) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(b"\xEF\xBB\xBF".to_vec());
    let mut row = |cells: &[String]| {
        let _ = w.write_record(cells.iter().map(|c| cell(c).into_owned()));
    };
    row(&[title(r)]);
    row(&[
        "填报单位".into(),
        r.district_name.clone(),
        "报告期".into(),
        r.month.clone(),
    ]);
    row(&["项目".into(), "指标".into(), "数值".into()]);
    for (section, item, value) in summary_rows(r) {
        row(&[section, item, trim_number(value)]);
    }
    row(&[]);
    row(&DETAIL_HEADERS.map(str::to_owned));
    for p in &r.places {
        row(&detail_row(p));
    }
    row(&[]);
    row(&[audit_line(r)]);
    w.into_inner().unwrap_or_default()
}

/// A cell Excel will not run: one that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
/// gets a leading apostrophe, which Excel shows as text (OWASP's advice on CSV injection).
pub(crate) fn cell(v: &str) -> std::borrow::Cow<'_, str> {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}").into()
    } else {
        v.into()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cells_that_excel_would_run_become_text() {
        for (v, want) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("大湾村电工培训班", "大湾村电工培训班"),
            ("50.00", "50.00"),
            ("", ""),
            (" =1", " =1"),
        ] {
            assert_eq!(super::cell(v), want, "{v:?}");
        }
    }
}
