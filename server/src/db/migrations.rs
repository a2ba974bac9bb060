//! The schema, version by version, on each database: numbered SQL files in `migrations/`, applied
//! each in its own transaction with its version.

/// Refuses a database whose schema (`found`) is newer than the newest of `migrations`: a server of
/// an earlier release must not write into tables it does not know.
pub fn refuse_newer_schema(found: i64, migrations: &[(i64, &str)]) -> Result<(), super::DbError> {
    let known = migrations.last().map_or(0, |m| m.0);
    if found > known {
        return Err(super::DbError::Config(format!(
            "the database's schema is version {found}, newer than this server knows ({known}): \
             run the release that upgraded it, or a later one"
        )));
    }
    Ok(())
}

/// The schema on SQLite, version by version ([`POSTGRES_MIGRATIONS`] is the same on PostgreSQL).
pub const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/001_documents.sql")),
    (2, include_str!("migrations/002_projections.sql")),
    (3, include_str!("migrations/003_accounts.sql")),
    (4, include_str!("migrations/004_signin.sql")),
    (5, include_str!("migrations/005_district_office.sql")),
    (6, include_str!("migrations/006_subsidy_lookups.sql")),
    (7, include_str!("migrations/007_erasure.sql")),
    (8, include_str!("migrations/008_pay.sql")),
    (9, include_str!("migrations/009_trainee_keys.sql")),
    (10, include_str!("migrations/010_callbacks.sql")),
    (11, include_str!("migrations/011_office_security.sql")),
    (12, include_str!("migrations/012_instructor_reset.sql")),
    (13, include_str!("migrations/013_stateless_challenges.sql")),
];

/// The schema on PostgreSQL, version by version: the same tables as SQLite's
/// ([`SQLITE_MIGRATIONS`]) in PostgreSQL's types.
pub const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres/001_documents.sql")),
    (2, include_str!("migrations/postgres/002_projections.sql")),
    (3, include_str!("migrations/postgres/003_accounts.sql")),
    (4, include_str!("migrations/postgres/004_signin.sql")),
    (
        5,
        include_str!("migrations/postgres/005_district_office.sql"),
    ),
    (
        6,
        include_str!("migrations/postgres/006_subsidy_lookups.sql"),
    ),
    (7, include_str!("migrations/postgres/007_erasure.sql")),
    (8, include_str!("migrations/postgres/008_pay.sql")),
    (9, include_str!("migrations/postgres/009_trainee_keys.sql")),
    (10, include_str!("migrations/postgres/010_callbacks.sql")),
    (
        11,
        include_str!("migrations/postgres/011_office_security.sql"),
    ),
    (
        12,
        include_str!("migrations/postgres/012_instructor_reset.sql"),
    ),
    (
        13,
        include_str!("migrations/postgres/013_stateless_challenges.sql"),
    ),
];
