//! The subsidy decisions and the rules behind them, in Chinese, as the report and the dashboard
//! write them.

pub(super) fn decision_label(d: &str) -> &'static str {
    match d {
        "subsidised" => "享受补贴",
        "class_not_subsidised" => "非补贴性培训",
        "class_cancelled" => "培训班已取消",
        "year_cap_reached" => "超过年度3次上限",
        "same_occupation_and_level" => "同职业同等级已补贴",
        _ => "未判定",
    }
}

/// The rule behind a subsidy decision, in Chinese.
pub(crate) fn rule_text(decision: &str, year: i32, nth: Option<i64>, cap: Option<i64>) -> String {
    match decision {
        "subsidised" => format!(
            "{year}年第{}次补贴性培训（每人每年至多3次）",
            nth.unwrap_or(0)
        ),
        "class_not_subsidised" => "非补贴性培训班".to_owned(),
        "class_cancelled" => "培训班已取消，不予补贴".to_owned(),
        "year_cap_reached" => format!("{year}年已享受{}次补贴性培训，达到上限", cap.unwrap_or(3)),
        "same_occupation_and_level" => "同一职业（工种）同一等级已享受过补贴".to_owned(),
        other => other.to_owned(),
    }
}
