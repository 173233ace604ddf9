from django.db import migrations

# The SQL is written out here, as it was when this migration shipped, never read from ledger/sql/: a
# migration must install the same thing on a fresh database today as it did on the databases it
# upgraded then. Later changes to these functions go in new migrations (see 0003).

GENESIS_HEAD_SQL = "INSERT INTO ledger_head(id, position, hash) VALUES (1, 0, '\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)"

APPEND_SQL = """-- ledger_append(batch jsonb): the one write path into the log.
--
-- In one call, inside the caller's transaction:
--   1. checks each stream's expected version (optimistic concurrency) or, for "any", takes the
--      stream row lock and continues from its current version;
--   2. refuses postings that do not sum to zero per asset per event;
--   3. opens / resolves pending transfers (each resolved at most once);
--   4. updates balances (row locks taken in a fixed order, so writers never deadlock) and refuses
--      to let a non-negative account go below zero;
--   5. only then takes the global append lock, assigns positions, chains hashes, inserts events
--      and postings and moves the head. The lock is held until commit, so positions become
--      visible in commit order with no gaps, while steps 1-4 of other writers run in parallel.
--
-- Errors use SQLSTATE class LG so the Python side can map them to precise exceptions:
--   LG001 stream version conflict   LG002 unbalanced postings   LG003 balance constraint
--   LG004 pending transfer not open LG005 pending transfer already exists
CREATE OR REPLACE FUNCTION ledger_append(p jsonb)
RETURNS TABLE(out_position bigint, out_version integer, out_hash bytea, out_recorded_at timestamptz)
LANGUAGE plpgsql AS $fn$
DECLARE
    s jsonb;
    e jsonb;
    l jsonb;
    o jsonb;
    v_count integer;
    v_expected integer;
    v_base integer;
    v_bases jsonb := '{}'::jsonb;
    v_accounts jsonb;
    v_account_id bigint;
    v_posted numeric;
    v_pin numeric;
    v_pout numeric;
    v_bad record;
    v_head_pos bigint;
    v_hash bytea;
    v_ts timestamptz;
    v_ts_text text;
    v_event_index integer := 0;
    v_line_no integer;
    v_version integer;
    v_versions integer[] := '{}';
    a_event integer[] := '{}';
    a_line integer[] := '{}';
    a_account bigint[] := '{}';
    a_asset text[] := '{}';
    a_posted numeric[] := '{}';
    a_pin numeric[] := '{}';
    a_pout numeric[] := '{}';
    a_pending text[] := '{}';
    a_posted_after numeric[] := '{}';
    a_pin_after numeric[] := '{}';
    a_pout_after numeric[] := '{}';
BEGIN
    -- 1. stream versions (streams arrive sorted by id: a fixed lock order)
    FOR s IN SELECT value FROM jsonb_array_elements(p->'streams') LOOP
        v_count := (s->>'count')::integer;
        IF jsonb_typeof(s->'expected') = 'number' THEN
            v_expected := (s->>'expected')::integer;
            IF v_expected = 0 THEN
                INSERT INTO ledger_stream(stream_id, version) VALUES (s->>'id', v_count)
                ON CONFLICT (stream_id) DO NOTHING;
            ELSE
                UPDATE ledger_stream SET version = v_expected + v_count
                WHERE stream_id = s->>'id' AND version = v_expected;
            END IF;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'stream % is not at version %', s->>'id', v_expected
                    USING ERRCODE = 'LG001', DETAIL = s->>'id';
            END IF;
            v_base := v_expected;
        ELSE
            INSERT INTO ledger_stream(stream_id, version) VALUES (s->>'id', v_count)
            ON CONFLICT (stream_id) DO UPDATE SET version = ledger_stream.version + EXCLUDED.version
            RETURNING version - v_count INTO v_base;
        END IF;
        v_bases := v_bases || jsonb_build_object(s->>'id', v_base);
    END LOOP;

    -- 2. postings balance per event and asset (posted and pending separately)
    FOR v_bad IN
        SELECT ev.ordinality AS idx, ln->>1 AS asset
        FROM jsonb_array_elements(p->'events') WITH ORDINALITY AS ev(value, ordinality),
             jsonb_array_elements(ev.value->'lines') AS ln
        GROUP BY ev.ordinality, ln->>1
        HAVING sum((ln->>2)::numeric) <> 0 OR sum((ln->>3)::numeric - (ln->>4)::numeric) <> 0
        LIMIT 1
    LOOP
        RAISE EXCEPTION 'postings of event % do not sum to zero for asset %', v_bad.idx, v_bad.asset
            USING ERRCODE = 'LG002';
    END LOOP;

    -- 3. accounts (created on first use with the policy the caller declared)
    INSERT INTO ledger_account(path, non_negative)
    SELECT x->>'path', (x->>'non_negative')::boolean
    FROM jsonb_array_elements(p->'accounts') AS x
    ORDER BY 1
    ON CONFLICT (path) DO NOTHING;
    SELECT coalesce(jsonb_object_agg(a.path, a.id), '{}'::jsonb) INTO v_accounts
    FROM ledger_account a
    WHERE a.path IN (SELECT x->>'path' FROM jsonb_array_elements(p->'accounts') AS x);

    -- 4. pending transfers
    FOR o IN SELECT value FROM jsonb_array_elements(coalesce(p->'pending', '[]'::jsonb)) LOOP
        IF o->>'op' = 'open' THEN
            INSERT INTO ledger_pending(pending_id, debit_account_id, credit_account_id, asset, amount, state,
                                       opened_event_id)
            VALUES (o->>'id', (v_accounts->>(o->>'debit'))::bigint, (v_accounts->>(o->>'credit'))::bigint,
                    o->>'asset', (o->>'amount')::numeric, 'pending', (o->>'event_id')::uuid)
            ON CONFLICT (pending_id) DO NOTHING;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'pending transfer % already exists', o->>'id' USING ERRCODE = 'LG005';
            END IF;
        ELSE
            UPDATE ledger_pending
            SET state = o->>'op', posted_amount = (o->>'amount')::numeric,
                resolved_event_id = (o->>'event_id')::uuid
            WHERE pending_id = o->>'id' AND state = 'pending' AND amount >= (o->>'amount')::numeric;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'pending transfer % is not open (or the amount exceeds it)', o->>'id'
                    USING ERRCODE = 'LG004';
            END IF;
        END IF;
    END LOOP;

    -- 5. balances: create missing rows, lock all touched rows in a fixed order, then apply lines
    INSERT INTO ledger_balance(account_id, asset, posted, pending_in, pending_out)
    SELECT DISTINCT (v_accounts->>(ln->>0))::bigint, ln->>1, 0, 0, 0
    FROM jsonb_array_elements(p->'events') AS ev, jsonb_array_elements(ev->'lines') AS ln
    ORDER BY 1, 2
    ON CONFLICT (account_id, asset) DO NOTHING;
    PERFORM 1 FROM ledger_balance b
    WHERE (b.account_id, b.asset) IN (
        SELECT (v_accounts->>(ln->>0))::bigint, ln->>1
        FROM jsonb_array_elements(p->'events') AS ev, jsonb_array_elements(ev->'lines') AS ln)
    ORDER BY b.account_id, b.asset
    FOR UPDATE;

    FOR e IN SELECT value FROM jsonb_array_elements(p->'events') LOOP
        v_line_no := 0;
        FOR l IN SELECT value FROM jsonb_array_elements(e->'lines') LOOP
            v_account_id := (v_accounts->>(l->>0))::bigint;
            UPDATE ledger_balance
            SET posted = posted + (l->>2)::numeric,
                pending_in = pending_in + (l->>3)::numeric,
                pending_out = pending_out + (l->>4)::numeric
            WHERE account_id = v_account_id AND asset = l->>1
            RETURNING posted, pending_in, pending_out INTO v_posted, v_pin, v_pout;
            a_event := a_event || v_event_index;
            a_line := a_line || v_line_no;
            a_account := a_account || v_account_id;
            a_asset := a_asset || (l->>1);
            a_posted := a_posted || (l->>2)::numeric;
            a_pin := a_pin || (l->>3)::numeric;
            a_pout := a_pout || (l->>4)::numeric;
            a_pending := a_pending || (l->>5);
            a_posted_after := a_posted_after || v_posted;
            a_pin_after := a_pin_after || v_pin;
            a_pout_after := a_pout_after || v_pout;
            v_line_no := v_line_no + 1;
        END LOOP;
        v_event_index := v_event_index + 1;
    END LOOP;

    SELECT a.path, b.asset, b.posted, b.pending_out INTO v_bad
    FROM ledger_balance b JOIN ledger_account a ON a.id = b.account_id
    WHERE (b.account_id, b.asset) IN (SELECT u.acc, u.asset FROM unnest(a_account, a_asset) AS u(acc, asset))
      AND (b.pending_in < 0 OR b.pending_out < 0 OR (a.non_negative AND b.posted - b.pending_out < 0))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'account % would go negative in %', v_bad.path, v_bad.asset
            USING ERRCODE = 'LG003', DETAIL = v_bad.path;
    END IF;

    -- 6. the short global section: positions, hash chain, inserts, head. Held until commit.
    PERFORM pg_advisory_xact_lock(7295316);
    SELECT h.position, h.hash INTO v_head_pos, v_hash FROM ledger_head h WHERE h.id = 1;
    v_ts := clock_timestamp();
    v_ts_text := to_char(v_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    v_event_index := 0;
    FOR e IN SELECT value FROM jsonb_array_elements(p->'events') LOOP
        v_version := (v_bases->>(e->>'stream'))::integer + (e->>'ordinal')::integer;
        v_head_pos := v_head_pos + 1;
        v_hash := sha256(v_hash || convert_to(
            '{"event":' || (e->>'body') || ',"position":' || v_head_pos || ',"recorded_at":"' || v_ts_text
            || '","version":' || v_version || '}', 'UTF8'));
        INSERT INTO ledger_event(position, event_id, stream_id, stream_version, event_type, schema_version,
                                 data, metadata, recorded_at, hash)
        VALUES (v_head_pos, (e->>'event_id')::uuid, e->>'stream', v_version, e->>'type',
                (e->>'schema_version')::smallint, e->'data', p->'metadata', v_ts, v_hash);
        out_position := v_head_pos;
        out_version := v_version;
        out_hash := v_hash;
        out_recorded_at := v_ts;
        RETURN NEXT;
        v_event_index := v_event_index + 1;
    END LOOP;

    INSERT INTO ledger_posting(position, line_no, account_id, asset, posted_delta, pending_in_delta,
                               pending_out_delta, pending_id, posted_after, pending_in_after, pending_out_after)
    SELECT v_head_pos - v_event_index + 1 + u.ev, u.ln, u.acc, u.asset, u.posted, u.pin, u.pout, u.pend,
           u.posted_after, u.pin_after, u.pout_after
    FROM unnest(a_event, a_line, a_account, a_asset, a_posted, a_pin, a_pout, a_pending,
                a_posted_after, a_pin_after, a_pout_after)
         AS u(ev, ln, acc, asset, posted, pin, pout, pend, posted_after, pin_after, pout_after);

    UPDATE ledger_head SET position = v_head_pos, hash = v_hash WHERE id = 1;
END;
$fn$;
"""

IMMUTABILITY_SQL = """-- The log is append-only: nobody, not even the table owner, updates, deletes or truncates it
-- through SQL. (A superuser can still disable triggers; `manage.py ledger verify` catches that.)
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'LG010';
END;
$fn$;

CREATE TRIGGER ledger_event_no_update_delete BEFORE UPDATE OR DELETE ON ledger_event
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_event_no_truncate BEFORE TRUNCATE ON ledger_event
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_posting_no_update_delete BEFORE UPDATE OR DELETE ON ledger_posting
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_posting_no_truncate BEFORE TRUNCATE ON ledger_posting
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [
        migrations.RunSQL(GENESIS_HEAD_SQL, "DELETE FROM ledger_head"),
        # As-of queries find the last posting of an account and asset at or before a position.
        migrations.RunSQL(
            "CREATE INDEX ledger_posting_asof_idx ON ledger_posting "
            "(account_id, asset, position DESC, line_no DESC) "
            "INCLUDE (posted_after, pending_in_after, pending_out_after)",
            "DROP INDEX ledger_posting_asof_idx",
        ),
        migrations.RunSQL(
            "CREATE UNIQUE INDEX ledger_posting_pending_release_idx ON ledger_posting (pending_id, account_id) "
            "WHERE pending_id IS NOT NULL AND (pending_in_delta < 0 OR pending_out_delta < 0)",
            "DROP INDEX ledger_posting_pending_release_idx",
        ),
        migrations.RunSQL(APPEND_SQL, "DROP FUNCTION ledger_append(jsonb)"),
        migrations.RunSQL(
            IMMUTABILITY_SQL,
            "DROP TRIGGER ledger_event_no_update_delete ON ledger_event;"
            "DROP TRIGGER ledger_event_no_truncate ON ledger_event;"
            "DROP TRIGGER ledger_posting_no_update_delete ON ledger_posting;"
            "DROP TRIGGER ledger_posting_no_truncate ON ledger_posting;"
            "DROP FUNCTION ledger_refuse_change();",
        ),
    ]
