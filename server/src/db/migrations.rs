//! The schema, version by version, on each database: numbered SQL files in `migrations/`, applied
//! each in its own transaction with its version.

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
];
