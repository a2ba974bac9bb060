//! The report laid out as the official table: its title, the summary's rows and the detail's
//! columns, shared by the workbook and the CSV.

use super::rules::decision_label;
use super::{MonthlyReport, Place};

pub(super) fn title(r: &MonthlyReport) -> String {
    let (y, m) = r.month.split_once('-').unwrap_or((&r.month, ""));
    format!(
        "{}职业技能培训月报（{}年{}月）",
        r.district_name,
        y,
        m.trim_start_matches('0')
    )
}

/// The summary's rows: (section, item, value).
pub(super) fn summary_rows(r: &MonthlyReport) -> Vec<(String, String, f64)> {
    let mut out = vec![(
        "培训人次".to_owned(),
        "合计".to_owned(),
        r.person_times.total as f64,
    )];
    for (section, rows) in [
        ("按培训类型", &r.person_times.by_training_type),
        ("按重点群体", &r.person_times.by_key_group),
        ("按职业（工种）", &r.person_times.by_occupation),
        ("按乡镇", &r.person_times.by_township),
    ] {
        for row in rows {
            out.push((
                section.to_owned(),
                row.label.clone(),
                row.person_times as f64,
            ));
        }
    }
    out.push((
        "脱贫户、监测户学员".to_owned(),
        "人次".to_owned(),
        r.person_times.poverty_households as f64,
    ));
    out.push((
        "生活费补贴".to_owned(),
        "人数".to_owned(),
        r.allowance.trainees as f64,
    ));
    out.push((
        "生活费补贴".to_owned(),
        "天数".to_owned(),
        r.allowance.payable_days as f64,
    ));
    out.push((
        "生活费补贴".to_owned(),
        "金额（元）".to_owned(),
        r.allowance.total_yuan,
    ));
    for d in &r.subsidy {
        out.push(("补贴判定".to_owned(), d.label.clone(), d.places as f64));
    }
    out.push((
        "年度目标进度".to_owned(),
        "累计人次".to_owned(),
        r.progress.cumulative as f64,
    ));
    if let Some(t) = r.progress.target {
        out.push(("年度目标进度".to_owned(), "年度目标".to_owned(), t as f64));
    }
    if let Some(f) = r.progress.fraction {
        out.push((
            "年度目标进度".to_owned(),
            "完成比例（%）".to_owned(),
            (f * 1000.0).round() / 10.0,
        ));
    }
    let c = &r.callbacks;
    let percent = |f: Option<f64>| f.map_or(0.0, |f| (f * 1000.0).round() / 10.0);
    for (item, value) in [
        ("应回访人天", c.trainee_days as f64),
        ("抽中回访人天", c.called as f64),
        ("回访比例（%）", percent(c.rate)),
        ("已有结果", c.decided as f64),
        ("确认", c.confirmed as f64),
        ("否认", c.denied as f64),
        ("联系不上", c.unreachable as f64),
        ("确认率（%）", percent(c.confirmation_rate)),
    ] {
        out.push(("电话回访".to_owned(), item.to_owned(), value));
    }
    for v in &c.by_village {
        out.push((
            "电话回访否认（按村）".to_owned(),
            v.village_name.clone(),
            v.denied as f64,
        ));
    }
    out
}

pub(super) const DETAIL_HEADERS: [&str; 13] = [
    "培训班",
    "乡镇",
    "培训类型",
    "职业（工种）",
    "姓名",
    "身份证号",
    "户类型",
    "计入本月人次",
    "补贴判定",
    "判定依据",
    "本月可补贴天数",
    "本月生活费（元）",
    "班级编号",
];

pub(super) fn detail_row(p: &Place) -> Vec<String> {
    vec![
        p.class_title.clone(),
        p.township.clone(),
        p.training_type.clone(),
        p.occupation.clone(),
        p.name_masked.clone(),
        p.id_masked.clone(),
        p.household.clone(),
        if p.counted { "是" } else { "否" }.to_owned(),
        decision_label(&p.decision).to_owned(),
        p.rule.clone(),
        p.payable_days.to_string(),
        format!("{:.2}", p.allowance_fen as f64 / 100.0),
        p.class_id.clone(),
    ]
}

pub(super) fn trim_number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

/// The audit chain's head when the report was made: a history rewritten after the month was filed
/// no longer ends here.
pub(super) fn audit_line(r: &MonthlyReport) -> String {
    format!(
        "审计链：共 {} 条，末条哈希 {}",
        r.audit_head.entries, r.audit_head.hash
    )
}
