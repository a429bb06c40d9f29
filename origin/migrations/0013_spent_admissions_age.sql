-- Spent admissions are forgotten once no token can carry them (accounts::purge, once a
-- minute): the purge finds them by age.
CREATE INDEX spent_admissions_age ON spent_admissions (spent_at);
