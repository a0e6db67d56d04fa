-- The caller's tenant levels on each model call: what spend reports and budget rebuilds group by.
ALTER TABLE model_calls ADD COLUMN org TEXT;
ALTER TABLE model_calls ADD COLUMN team TEXT;
ALTER TABLE model_calls ADD COLUMN project TEXT;
CREATE INDEX model_calls_team ON model_calls (team, recorded_at_ms);
CREATE INDEX model_calls_org ON model_calls (org, recorded_at_ms);
