//! Human-readable output.

use songpei_core::doc::Conflict;
use songpei_core::query::{ClassSummary, ClassView, TraineeView};
use songpei_core::rules::SubsidyDecision;

/// Pads to a display width, counting CJK characters as two columns.
fn pad(s: &str, width: usize) -> String {
    let w = unicode_width::UnicodeWidthStr::width(s);
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, (fen % 100).abs())
}

pub(crate) fn subsidy(d: &SubsidyDecision) -> String {
    match d {
        SubsidyDecision::ClassNotSubsidised => "Not a subsidised class.".into(),
        SubsidyDecision::ClassCancelled => "Not subsidised: the class was cancelled.".into(),
        SubsidyDecision::Subsidised { year, nth } => {
            format!("Subsidised: subsidised class no. {nth} of {year} for this person.")
        }
        SubsidyDecision::YearCapReached { year, cap } => format!(
            "WARNING: not subsidised — this person already has {cap} subsidised classes in {year}."
        ),
        SubsidyDecision::SameOccupationAndLevel { earlier } => format!(
            "WARNING: not subsidised — same occupation and level already subsidised in class {earlier}."
        ),
    }
}

pub(crate) fn class_list(classes: &[ClassSummary]) {
    if classes.is_empty() {
        println!("No classes.");
        return;
    }
    for c in classes {
        println!(
            "{}  {}  {} → {}  {:<4}  {:>3} trainees  {}",
            c.id,
            c.village,
            c.first_day,
            c.last_day,
            c.status.label_zh(),
            c.enrolled,
            c.title
        );
    }
}

pub(crate) fn class(v: &ClassView) {
    println!("{}  [{}]", v.title, v.status.label_zh());
    println!("  id          {}", v.id);
    println!("  village     {}", v.village);
    println!(
        "  occupation  {} · {} · {}{}",
        v.occupation,
        v.level.label_zh(),
        v.training_type.label_zh(),
        if v.subsidised { " · 补贴性" } else { "" }
    );
    println!(
        "  days        {} → {} ({} days{})",
        v.first_day,
        v.last_day,
        v.days.len(),
        if v.sign_out_required {
            ", sign-out required"
        } else {
            ""
        }
    );
    println!();
    let header: String = v
        .days
        .iter()
        .map(|d| d.format(" %m-%d").to_string())
        .collect();
    println!(
        "  {:<36} {}{}  payable  allowance",
        "trainee",
        pad("name", 12),
        header
    );
    for r in &v.roster {
        let marks: String = r
            .days
            .iter()
            .map(|d| {
                let m = match (d.attendance.signed_in, d.attendance.signed_out) {
                    _ if d.held => "待审",
                    (true, true) => "入出",
                    (true, false) => "入",
                    (false, true) => "  出",
                    (false, false) => " ·",
                };
                format!(" {}", pad(m, 5))
            })
            .collect();
        println!(
            "  {} {}{}  {:>7}  {:>9}{}",
            r.trainee_id,
            pad(&r.name_masked, 12),
            marks,
            r.payable_days,
            yuan(r.allowance_fen),
            match r.decided_by {
                songpei_core::query::DecidedBy::District => "",
                songpei_core::query::DecidedBy::Phone => "  预计 (estimate)",
            }
        );
    }
    println!();
    println!("  allowance total: {} yuan", yuan(v.allowance_total_fen));
    if v.roster
        .iter()
        .any(|r| r.decided_by == songpei_core::query::DecidedBy::Phone)
    {
        println!(
            "  预计: this phone's estimate, for places with records the district has not seen yet; the rest is what the district decided and pays."
        );
    }
    if !v.conflicts.is_empty() {
        println!();
        conflicts(&v.conflicts);
    }
}

pub(crate) fn trainee(v: &TraineeView) {
    println!("{}  {}", v.name, v.id_number);
    println!("  id         {}", v.id);
    println!("  village    {}", v.village);
    if let (Some(sex), Some(born)) = (v.sex, v.birth_date) {
        println!("  sex, born  {}, {}", sex.label_zh(), born);
    }
    if let Some(p) = &v.phone {
        println!("  phone      {p}");
    }
    if let Some(p) = v.poverty_status {
        println!("  household  {}", p.label_zh());
    }
    if !v.key_groups.is_empty() {
        let g: Vec<_> = v.key_groups.iter().map(|g| g.label_zh()).collect();
        println!("  groups     {}", g.join("、"));
    }
    for (c, d) in &v.classes {
        println!("  class      {} {} — {}", c.first_day, c.title, subsidy(d));
    }
    if !v.conflicts.is_empty() {
        conflicts(&v.conflicts);
    }
}

pub(crate) fn conflicts(cs: &[Conflict]) {
    if cs.is_empty() {
        println!("No conflicts.");
        return;
    }
    for c in cs {
        println!(
            "conflict in {} {} at {}: shown {} — values {}",
            c.kind,
            c.doc,
            c.path,
            c.winner,
            c.values.join(" | ")
        );
    }
}
