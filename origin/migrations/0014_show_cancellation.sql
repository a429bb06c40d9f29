-- An organizer calls a show off (origin/src/cancellation.rs). The request stops the sale in
-- one short transaction: the show is `cancelled` and its free seats `unavailable`. The
-- rest is a job whose state is this row, so any origin resumes it after a crash: live
-- holds released, unpaid orders cancelled, paid orders cancelled with a full refund owed
-- and their tickets revoked, each in batches of one short transaction.
CREATE TABLE show_cancellations (
    show_id          uuid PRIMARY KEY,
    reason           text CHECK (length(reason) <= 2000),
    requested_at     timestamptz NOT NULL DEFAULT now(),
    -- Paid orders when the show was called off (a payment settling meanwhile adds one).
    paid_orders      integer NOT NULL CHECK (paid_orders >= 0),
    -- Paid orders cancelled (each with a full refund owed), and unpaid ones.
    orders_cancelled integer NOT NULL DEFAULT 0 CHECK (orders_cancelled >= 0),
    unpaid_orders_cancelled integer NOT NULL DEFAULT 0 CHECK (unpaid_orders_cancelled >= 0),
    holds_released   integer NOT NULL DEFAULT 0 CHECK (holds_released >= 0),
    fans_notified    integer NOT NULL DEFAULT 0 CHECK (fans_notified >= 0),
    finished_at      timestamptz
);
CREATE INDEX show_cancellations_running ON show_cancellations (requested_at) WHERE finished_at IS NULL;

-- Each fan of the show hears of its cancellation once, whatever the number of its orders
-- and whichever batch reaches them: the notice and its outbox row commit together.
CREATE TABLE show_cancellation_notices (
    show_id uuid NOT NULL REFERENCES show_cancellations (show_id),
    fan_id  text NOT NULL,
    PRIMARY KEY (show_id, fan_id)
);

ALTER TABLE refunds DROP CONSTRAINT refunds_reason_check;
ALTER TABLE refunds ADD CONSTRAINT refunds_reason_check
    CHECK (reason IN ('fan_cancelled', 'organizer_cancelled', 'hold_expired', 'show_cancelled'));

-- A show's orders by status, for its cancellation's batches.
CREATE INDEX orders_show ON orders (show_id, status);
-- A show's refunds, for its cancellation's progress.
CREATE INDEX refunds_order ON refunds (order_id);
