//! The report as an Excel workbook, and written to a file from the command line.

use songpei_core::rules::PolicyTable;

use super::layout::{DETAIL_HEADERS, audit_line, detail_row, summary_rows, title};
use super::{Month, MonthlyReport, ReportError, monthly, to_csv};

/// The report as an Excel workbook: sheet 月报 (title, 填报单位 and 报告期, the summary table) and
/// sheet 明细 (every place), bordered, bold headers, Chinese throughout, numbers as numbers.
pub(crate) fn to_xlsx(r: &MonthlyReport) -> Result<Vec<u8>, ReportError> {
    use rust_xlsxwriter::{Format, FormatAlign, FormatBorder, Workbook};
    let wb_err = |_| ReportError::Workbook;
    let mut wb = Workbook::new();
    let title_f = Format::new()
        .set_bold()
        .set_font_size(16)
        .set_align(FormatAlign::Center);
    let head = Format::new()
        .set_bold()
        .set_border(FormatBorder::Thin)
        .set_align(FormatAlign::Center)
        .set_background_color(rust_xlsxwriter::Color::RGB(0xDDEBF7));
    let cell = Format::new().set_border(FormatBorder::Thin);
    let num = Format::new()
        .set_border(FormatBorder::Thin)
        .set_num_format("0");
    let money = Format::new()
        .set_border(FormatBorder::Thin)
        .set_num_format("#,##0.00");
    let s = wb.add_worksheet();
    s.set_name("月报").map_err(wb_err)?;
    s.merge_range(0, 0, 0, 2, &title(r), &title_f)
        .map_err(wb_err)?;
    s.write_string(1, 0, format!("填报单位：{}", r.district_name))
        .map_err(wb_err)?;
    s.write_string(1, 2, format!("报告期：{}", r.month))
        .map_err(wb_err)?;
    for (c, h) in ["项目", "指标", "数值"].iter().enumerate() {
        s.write_string_with_format(3, c as u16, *h, &head)
            .map_err(wb_err)?;
    }
    for (i, (section, item, value)) in summary_rows(r).into_iter().enumerate() {
        let row = 4 + i as u32;
        s.write_string_with_format(row, 0, section, &cell)
            .map_err(wb_err)?;
        let is_money = item.contains('元') || item.contains('%');
        s.write_string_with_format(row, 1, item, &cell)
            .map_err(wb_err)?;
        s.write_number_with_format(row, 2, value, if is_money { &money } else { &num })
            .map_err(wb_err)?;
    }
    let after = 4 + summary_rows(r).len() as u32 + 1;
    s.write_string(after, 0, audit_line(r)).map_err(wb_err)?;
    s.set_column_width(0, 22).map_err(wb_err)?;
    s.set_column_width(1, 26).map_err(wb_err)?;
    s.set_column_width(2, 14).map_err(wb_err)?;
    let d = wb.add_worksheet();
    d.set_name("明细").map_err(wb_err)?;
    for (c, h) in DETAIL_HEADERS.iter().enumerate() {
        d.write_string_with_format(0, c as u16, *h, &head)
            .map_err(wb_err)?;
    }
    for (i, p) in r.places.iter().enumerate() {
        let row = 1 + i as u32;
        for (c, v) in detail_row(p).into_iter().enumerate() {
            let c = c as u16;
            match c {
                10 => d.write_number_with_format(row, c, p.payable_days as f64, &num),
                11 => d.write_number_with_format(row, c, p.allowance_fen as f64 / 100.0, &money),
                _ => d.write_string_with_format(row, c, v, &cell),
            }
            .map_err(wb_err)?;
        }
    }
    for (c, w) in [24, 12, 14, 14, 8, 20, 10, 12, 16, 34, 14, 16, 38]
        .iter()
        .enumerate()
    {
        d.set_column_width(c as u16, *w).map_err(wb_err)?;
    }
    d.set_freeze_panes(1, 0).map_err(wb_err)?;
    wb.save_to_buffer().map_err(wb_err)
}

/// `songpei-server report monthly`: writes the report of the data folder's district to `out`.
pub fn write_file(
    at: &crate::store::StoreLocation,
    district: &str,
    month: &str,
    format: &str,
    out: &std::path::Path,
    policy: &PolicyTable,
) -> Result<String, String> {
    let month = Month::parse(month).map_err(|e| e.to_string())?;
    let store = at.open(1)?;
    let r = monthly(store.conn(), district, month, policy).map_err(|e| e.to_string())?;
    let bytes = match format {
        "xlsx" => to_xlsx(&r).map_err(|e| e.to_string())?,
        "csv" => to_csv(&r),
        "json" => serde_json::to_vec_pretty(&r).map_err(|e| e.to_string())?,
        other => return Err(format!("format: '{other}' is not xlsx, csv or json")),
    };
    std::fs::write(out, &bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(format!(
        "{}: {} person-times, allowance {:.2} yuan, written to {}",
        title(&r),
        r.person_times.total,
        r.allowance.total_yuan,
        out.display()
    ))
}
