-- onsale schema. The no-oversell truths are constraints here, not only application code:
--   * seat_inventory has one row per (show, seat): a seat cannot be in two states at once;
--     its CHECKs tie `held` to a hold id + expiry and `sold` to an order.
--   * hold_seats_one_live_hold: at most one unreleased hold per (show, seat).
--   * tickets_one_valid_per_seat: at most one valid ticket per (show, seat).

CREATE TABLE venues (
    id             uuid PRIMARY KEY,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    city           text NOT NULL CHECK (length(city) BETWEEN 1 AND 100),
    timezone       text NOT NULL DEFAULT 'UTC',
    layout_version integer NOT NULL DEFAULT 1 CHECK (layout_version > 0),
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sections (
    venue_id   uuid NOT NULL REFERENCES venues (id),
    id         text NOT NULL CHECK (id ~ '^[A-Za-z0-9_-]{1,32}$'),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    price_tier text NOT NULL CHECK (price_tier ~ '^[A-Za-z0-9_-]{1,32}$'),
    position   integer NOT NULL,
    PRIMARY KEY (venue_id, id),
    UNIQUE (venue_id, position)
);

-- `layout_idx` is the seat's place in the layout document and in the availability
-- `seat_status` string; the builder streams seats in this order.
CREATE TABLE seats (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    venue_id   uuid NOT NULL,
    section_id text NOT NULL,
    row_label  text NOT NULL CHECK (length(row_label) BETWEEN 1 AND 16),
    number     integer NOT NULL CHECK (number > 0),
    x          real NOT NULL,
    y          real NOT NULL,
    accessible boolean NOT NULL DEFAULT false,
    obstructed boolean NOT NULL DEFAULT false,
    layout_idx integer NOT NULL CHECK (layout_idx >= 0),
    FOREIGN KEY (venue_id, section_id) REFERENCES sections (venue_id, id),
    UNIQUE (venue_id, section_id, row_label, number),
    UNIQUE (venue_id, layout_idx)
);

CREATE TABLE events (
    id            uuid PRIMARY KEY,
    venue_id      uuid NOT NULL REFERENCES venues (id),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    performer     text NOT NULL CHECK (length(performer) BETWEEN 1 AND 200),
    description   text NOT NULL DEFAULT '' CHECK (length(description) <= 4000),
    -- Earliest show; the public listing orders and pages by (first_show_at, id).
    first_show_at timestamptz,
    search        tsvector GENERATED ALWAYS AS (to_tsvector('simple', name || ' ' || performer)) STORED,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_listing ON events (first_show_at, id) WHERE first_show_at IS NOT NULL;
CREATE INDEX events_search ON events USING gin (search);
CREATE INDEX events_venue ON events (venue_id);

CREATE TABLE shows (
    id             uuid PRIMARY KEY,
    event_id       uuid NOT NULL REFERENCES events (id),
    starts_at      timestamptz NOT NULL,
    on_sale_at     timestamptz NOT NULL,
    status         text NOT NULL DEFAULT 'scheduled'
                   CHECK (status IN ('scheduled', 'on_sale', 'sold_out', 'cancelled', 'completed')),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    seat_count     integer NOT NULL CHECK (seat_count >= 0),
    layout_version integer NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (on_sale_at <= starts_at)
);
CREATE INDEX shows_event ON shows (event_id, starts_at);
CREATE INDEX shows_starts_at ON shows (starts_at);

CREATE TABLE show_price_tiers (
    show_id     uuid NOT NULL REFERENCES shows (id),
    tier        text NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (show_id, tier)
);

CREATE TABLE holds (
    id          uuid PRIMARY KEY,
    show_id     uuid NOT NULL REFERENCES shows (id),
    fan_id      text NOT NULL CHECK (length(fan_id) BETWEEN 1 AND 128),
    status      text NOT NULL CHECK (status IN ('active', 'released', 'expired', 'converted')),
    seat_count  integer NOT NULL CHECK (seat_count > 0),
    total_cents bigint NOT NULL CHECK (total_cents >= 0),
    currency    text NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    CHECK ((status = 'active') = (ended_at IS NULL))
);
CREATE INDEX holds_active_expiry ON holds (expires_at) WHERE status = 'active';
CREATE INDEX holds_fan ON holds (show_id, fan_id) WHERE status = 'active';

-- Per-show seat inventory, partitioned by show: one partition per show keeps a stadium's
-- 80,000 rows together, lets a finished show be detached/dropped in one step, and keeps
-- the hot claim path on one small index.
CREATE TABLE seat_inventory (
    show_id         uuid NOT NULL REFERENCES shows (id),
    seat_id         bigint NOT NULL REFERENCES seats (id),
    section_id      text NOT NULL,
    price_tier      text NOT NULL,
    layout_idx      integer NOT NULL,
    status          text NOT NULL DEFAULT 'available'
                    CHECK (status IN ('available', 'held', 'sold', 'unavailable')),
    hold_id         uuid,
    hold_expires_at timestamptz,
    order_id        uuid,
    version         integer NOT NULL DEFAULT 0,
    PRIMARY KEY (show_id, seat_id),
    CONSTRAINT seat_inventory_held_has_hold
        CHECK ((status = 'held') = (hold_id IS NOT NULL AND hold_expires_at IS NOT NULL)),
    CONSTRAINT seat_inventory_sold_has_order
        CHECK ((status = 'sold') = (order_id IS NOT NULL))
) PARTITION BY LIST (show_id);
CREATE INDEX seat_inventory_layout ON seat_inventory (show_id, layout_idx);
CREATE INDEX seat_inventory_section ON seat_inventory (show_id, section_id, status);

-- The seats of each hold. Rows of ended holds stay (history) with `released_at` set.
CREATE TABLE hold_seats (
    hold_id     uuid NOT NULL REFERENCES holds (id),
    show_id     uuid NOT NULL,
    seat_id     bigint NOT NULL,
    released_at timestamptz,
    PRIMARY KEY (hold_id, seat_id),
    FOREIGN KEY (show_id, seat_id) REFERENCES seat_inventory (show_id, seat_id)
);
CREATE UNIQUE INDEX hold_seats_one_live_hold ON hold_seats (show_id, seat_id) WHERE released_at IS NULL;

CREATE TABLE orders (
    id            uuid PRIMARY KEY,
    show_id       uuid NOT NULL REFERENCES shows (id),
    hold_id       uuid NOT NULL UNIQUE REFERENCES holds (id),
    fan_id        text NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending_payment', 'confirmed', 'payment_failed', 'cancelled')),
    cancel_reason text,
    total_cents   bigint NOT NULL CHECK (total_cents >= 0),
    currency      text NOT NULL,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    confirmed_at  timestamptz
);
CREATE INDEX orders_fan ON orders (fan_id, created_at DESC, id DESC);

CREATE TABLE order_items (
    order_id    uuid NOT NULL REFERENCES orders (id),
    show_id     uuid NOT NULL,
    seat_id     bigint NOT NULL,
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (order_id, seat_id),
    FOREIGN KEY (show_id, seat_id) REFERENCES seat_inventory (show_id, seat_id)
);

ALTER TABLE seat_inventory
    ADD CONSTRAINT seat_inventory_order FOREIGN KEY (order_id) REFERENCES orders (id);

CREATE TABLE payments (
    id           uuid PRIMARY KEY,
    order_id     uuid NOT NULL REFERENCES orders (id),
    provider     text NOT NULL,
    provider_ref text NOT NULL,
    status       text NOT NULL CHECK (status IN ('requires_confirmation', 'processing', 'requires_action',
                                                 'succeeded', 'failed', 'refunded')),
    amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
    currency     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, provider_ref)
);

-- Webhook deduplication: the event's effect and this row commit in one transaction.
CREATE TABLE payment_events (
    provider    text NOT NULL,
    event_id    text NOT NULL,
    payment_id  uuid REFERENCES payments (id),
    event_type  text NOT NULL,
    payload     jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

CREATE TABLE tickets (
    id         uuid PRIMARY KEY,
    order_id   uuid NOT NULL REFERENCES orders (id),
    show_id    uuid NOT NULL,
    seat_id    bigint NOT NULL,
    status     text NOT NULL CHECK (status IN ('valid', 'revoked')),
    issued_at  timestamptz NOT NULL DEFAULT now(),
    scanned_at timestamptz,
    FOREIGN KEY (show_id, seat_id) REFERENCES seat_inventory (show_id, seat_id)
);
CREATE UNIQUE INDEX tickets_one_valid_per_seat ON tickets (show_id, seat_id) WHERE status = 'valid';
CREATE INDEX tickets_order ON tickets (order_id);

-- Idempotent writes, per fan and key. `request_hash` tells a replay from a reused key;
-- `response_status IS NULL` marks a request still in flight.
CREATE TABLE idempotency_keys (
    fan_id          text NOT NULL,
    key             text NOT NULL CHECK (key ~ '^[\x21-\x7e]{1,255}$'),
    route           text NOT NULL,
    request_hash    bytea NOT NULL,
    response_status smallint,
    response_body   bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (fan_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    aggregate_id uuid NOT NULL,
    event_type   text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
