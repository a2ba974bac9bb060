-- Deciding a person's places again deletes their rows by trainee id too: without this index each
-- merge of a class scanned every place of the district once per trainee on its roster.
CREATE INDEX p_subsidies_by_trainee ON p_subsidies (trainee_id);
