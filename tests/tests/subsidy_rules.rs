//! The subsidy rules on the server, across villages and concurrent syncs (rows I1 and I2): one
//! person registered in two villages by two coordinators is matched by the blind index of the ID
//! number; a fourth subsidised class in a year is not subsidised whichever phone syncs first, and
//! the database itself refuses a fourth subsidised row.

use songpei_tests::{CliPhone, ServerProcess, VILLAGE_A, VILLAGE_B, id_number};

fn class(phone: &CliPhone, village: &str, occupation: &str, level: &str, start: &str) -> String {
    phone.ok(&[
        "class",
        "create",
        "--title",
        &format!("{occupation}培训班"),
        "--village",
        village,
        "--occupation",
        occupation,
        "--level",
        level,
        "--type",
        "就业技能培训",
        "--start",
        start,
        "--days",
        "2",
        "--subsidised",
    ])
}

fn trainee(phone: &CliPhone, village: &str, id: &str) -> String {
    phone.ok(&[
        "trainee",
        "add",
        "--name",
        "韦小宝",
        "--id-number",
        id,
        "--village",
        village,
    ])
}

/// (class, decision, nth) of every place of the person, by first day.
fn decisions(server: &ServerProcess) -> Vec<(String, String, Option<i64>)> {
    server
        .database()
        .query_map(
            "SELECT s.class_id, s.decision, s.nth FROM p_subsidies s
             JOIN p_classes c ON c.id = s.class_id ORDER BY c.first_day",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("decisions")
}

fn i1_i2_one_person_in_two_villages_gets_three_subsidised_classes_a_year_whatever_the_sync_order(
    start: &dyn Fn(Option<&str>) -> ServerProcess,
) {
    let server = start(None);
    let a = CliPhone::new();
    let b = CliPhone::new();
    server.enroll(&a, &[VILLAGE_A]);
    server.enroll(&b, &[VILLAGE_B]);
    let person = id_number("45080219800808001");
    let ta = trainee(&a, VILLAGE_A, &person);
    let tb = trainee(&b, VILLAGE_B, &person);
    // Village A: three classes (March, May, July 2026); village B: electrician again at the same
    // level (I2) in February, and a fourth occupation in January.
    let cook = class(&a, VILLAGE_A, "中式烹调师", "初级工", "2026-03-02");
    let care = class(&a, VILLAGE_A, "养老护理员", "初级工", "2026-05-04");
    let elec = class(&a, VILLAGE_A, "电工", "初级工", "2026-07-06");
    let elec_again = class(&b, VILLAGE_B, "电工", "初级工", "2026-02-02");
    let shop = class(&b, VILLAGE_B, "农村电商", "专项能力", "2026-01-05");
    for c in [&cook, &care, &elec] {
        a.ok(&["enrol", c, &ta]);
    }
    for c in [&elec_again, &shop] {
        b.ok(&["enrol", c, &tb]);
    }
    // Both phones sync at once.
    std::thread::scope(|s| {
        let ha = s.spawn(|| a.ok(&["sync"]));
        let hb = s.spawn(|| b.ok(&["sync"]));
        ha.join().expect("sync a");
        hb.join().expect("sync b");
    });
    // By first day: 电商 (Jan) 1st, 电工 (Feb) 2nd, 烹调 (Mar) 3rd; 护理 (May) over the cap; 电工
    // again (Jul) the same occupation and level as February's.
    let got = decisions(&server);
    let want = vec![
        (shop.clone(), "subsidised".to_owned(), Some(1)),
        (elec_again.clone(), "subsidised".to_owned(), Some(2)),
        (cook.clone(), "subsidised".to_owned(), Some(3)),
        (care.clone(), "year_cap_reached".to_owned(), None),
        (elec.clone(), "same_occupation_and_level".to_owned(), None),
    ];
    assert_eq!(got, want);

    // Syncing again in the other order changes nothing.
    b.ok(&["sync"]);
    a.ok(&["sync"]);
    assert_eq!(decisions(&server), want);

    // The database refuses a fourth subsidised place for the person in 2026, and a second
    // subsidised 电工 初级工, whatever code tries.
    let conn = server.database();
    let person_key: Vec<u8> = conn
        .query_row(
            "SELECT person FROM p_subsidies WHERE class_id = ?1",
            songpei_server::args![&care],
            |r| r.get(0),
        )
        .expect("person");
    for (nth, occupation) in [(4, "x"), (2, "y"), (9, "z")] {
        let r = conn.execute(
            "UPDATE p_subsidies SET decision = 'subsidised', nth = ?1, occupation_key = ?2
             WHERE class_id = ?3 AND person = ?4",
            songpei_server::args![nth, occupation, &care, &person_key],
        );
        assert!(r.is_err(), "a subsidised row with nth {nth} was stored");
    }
    let r = conn.execute(
        "UPDATE p_subsidies SET decision = 'subsidised', nth = 3, year = 2027, occupation_key = '电工'
         WHERE class_id = ?1",
        songpei_server::args![&care],
    );
    assert!(
        r.is_err(),
        "the same occupation and level subsidised twice was stored"
    );
}

songpei_tests::on_every_database!(
    i1_i2_one_person_in_two_villages_gets_three_subsidised_classes_a_year_whatever_the_sync_order,
);
