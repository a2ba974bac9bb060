//! The report as CSV.

use super::MonthlyReport;
use super::layout::{DETAIL_HEADERS, detail_row, summary_rows, title, trim_number};

/// The report as CSV (UTF-8 with a byte-order mark, so Excel reads the Chinese): a title line, the
/// summary as (项目, 指标, 数值), then the places.
pub(crate) fn to_csv(r: &MonthlyReport) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(b"\xEF\xBB\xBF".to_vec());
    let _ = w.write_record([title(r)]);
    let _ = w.write_record(["填报单位", &r.district_name, "报告期", &r.month]);
    let _ = w.write_record(["项目", "指标", "数值"]);
    for (section, item, value) in summary_rows(r) {
        let _ = w.write_record([section, item, trim_number(value)]);
    }
    let _ = w.write_record([""; 0]);
    let _ = w.write_record(DETAIL_HEADERS);
    for p in &r.places {
        let _ = w.write_record(detail_row(p));
    }
    w.into_inner().unwrap_or_default()
}
