//! Trainee cards: the district signs one card per trainee on a class's roster, for the phone to
//! print (ADR 0004).

use axum::extract::State;

use crate::accounts::{self, audit};
use crate::error::ApiError;
use crate::{AppState, attendance, office};

use super::auth;

/// The trainee cards of a class, signed by the district, for the phone to print.
#[utoipa::path(post, path = "/v1/cards", tag = "phones",
    security(("bearer" = [])),
    request_body = songpei_core::sync::protocol::CardsRequest,
    responses(
        (status = 200, description = "One card per trainee on the roster, and the district's \
            card keys.", body = songpei_core::sync::protocol::CardsResponse),
        (status = 400, body = crate::error::ErrorBody, description = "`bad_request`: the body \
            is not a cards request."),
        (status = 403, body = crate::error::ErrorBody, description = "`out_of_scope`: the class \
            is outside this phone's villages."),
        (status = 404, body = crate::error::ErrorBody, description = "`not_found`: the class is \
            not on the server; sync first."),
        office::openapi::Token,
        office::openapi::Limits,
        office::openapi::Storage,
    ))]
pub(super) async fn cards_handler(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<
        axum::Json<songpei_core::sync::protocol::CardsRequest>,
        axum::extract::rejection::JsonRejection,
    >,
) -> Result<axum::Json<songpei_core::sync::protocol::CardsResponse>, ApiError> {
    let axum::Json(req) =
        body.map_err(|_| ApiError::BadRequest("the body is not a cards request".into()))?;
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let grant = auth::authenticate(&s, &headers)?;
        s.rate.device(&grant.device)?;
        cards(&s, &grant, req.class).map(axum::Json)
    })
    .await
    .map_err(|_| ApiError::Internal)?
}

fn cards(
    state: &AppState,
    grant: &accounts::DeviceGrant,
    class: uuid::Uuid,
) -> Result<songpei_core::sync::protocol::CardsResponse, ApiError> {
    let store = state.lock_store()?;
    let conn = store.conn();
    let class = class.to_string();
    let village = attendance::class_village(conn, &class)?.ok_or_else(|| {
        ApiError::NotFound(format!("class {class} is not on the server; sync first"))
    })?;
    if !grant.villages.contains(&village) {
        return Err(ApiError::OutOfScope(format!(
            "class {class} is outside this phone's villages"
        )));
    }
    let district =
        songpei_core::ids::DistrictCode::parse(&grant.district).ok_or(ApiError::NotInitialised)?;
    let now = chrono::Utc::now().timestamp_millis();
    let roster = attendance::roster(conn, &class)?;
    let ids: Vec<_> = roster.iter().map(|(t, _)| *t).collect();
    let cards = attendance::sign_cards(conn, &district, &ids, now)?;
    audit::append(
        conn,
        now,
        &[audit::Entry::new(
            format!("device:{}", grant.device),
            "issue_cards",
            class.clone(),
            serde_json::json!({ "cards": cards.len() }),
        )],
    )?;
    Ok(songpei_core::sync::protocol::CardsResponse {
        cards: cards
            .iter()
            .map(|c| songpei_core::sync::protocol::IssuedCard {
                trainee: c.trainee.uuid(),
                text: c.to_text(),
            })
            .collect(),
        card_keys: attendance::card_key_set(conn)?,
    })
}
