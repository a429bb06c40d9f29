-- An organizer may cancel a paid order the fan may not (a ticket was scanned at the door);
-- the refund it owes under the show's policy records who cancelled.
ALTER TABLE refunds DROP CONSTRAINT refunds_reason_check;
ALTER TABLE refunds ADD CONSTRAINT refunds_reason_check
    CHECK (reason IN ('fan_cancelled', 'organizer_cancelled', 'hold_expired'));
