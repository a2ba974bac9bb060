//! The attendance checks' tests: each flow of ADR 0004 through the checks (`flows`), and
//! `check_class` row by row (`table`).

mod flows;
mod table;

/// Registers, as if witnessed in person, the key of every response in `class`'s records: the rows
/// that are about other checks start from trainee phones whose keys are their trainees' own.
fn register_every_key(db: &dyn crate::db::Sql, class: &songpei_core::domain::Class) {
    use songpei_core::domain::AttendanceMethod;
    use songpei_core::qr::Code;
    for a in class.attendance.values() {
        let AttendanceMethod::Qr { response, .. } = &a.method else {
            continue;
        };
        let Ok(Code::Response(r)) = Code::from_bytes(response) else {
            continue;
        };
        db.execute(
            "INSERT INTO trainee_keys (registration_id, class_id, trainee_id, responder, witness,
             registrar, registered_ms, received_ms, valid, problem)
             VALUES (?1, ?2, ?3, ?4, '-', '-', 0, 0, 1, NULL) ON CONFLICT DO NOTHING",
            crate::args![
                format!("{}-{}", r.trainee, r.responder()),
                class.id.to_string(),
                r.trainee.to_string(),
                r.responder()
            ],
        )
        .expect("register a key");
    }
}
