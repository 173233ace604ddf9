from importlib import import_module

from django.db import migrations

# Issue 16: an append that seals inline while no journalled append is in flight (the flight lock,
# ledger/sql/seal.sql) makes no look at the journal after its commit: one statement per command for a
# lone writer. ledger_append returns what its after-commit step must be (out_after), so it is dropped and
# created again (a new result column); ledger_seal_after_holder is the wait of an append journalled
# while such a sealer held the lock. The texts are ledger/sql/append.sql and the last function of
# ledger/sql/seal.sql as this migration shipped.

APPEND_SQL = """-- ledger_append(batch jsonb): the one write path into the log.
--
-- It runs as its owner (SECURITY DEFINER), the role that migrates: the application's role has no
-- INSERT, UPDATE or DELETE on the ledger's tables and appends only by calling this function, so every
-- check below holds for whatever batch it sends (ledger/roles.py). The search_path is pinned, with
-- pg_temp last, so no object the caller creates (a temporary ledger_head, say) can stand in for ours.
--
-- In one call, inside the caller's transaction:
--   1. checks each stream's expected version (optimistic concurrency) or, for "any", takes the
--      stream row lock and continues from its current version;
--   2. refuses amounts that are not whole numbers of base units and postings that do not sum to
--      zero per asset per event;
--   3. opens / resolves pending transfers (each resolved at most once: a resolve changes the row
--      only while it is still pending, so of two racing resolves the second is refused);
--   4. updates balances (one upsert per account and asset, row locks taken in a fixed order, so
--      writers never deadlock) and refuses to let a non-negative account go below zero;
--   5. then either seals at once or journals (ledger/sql/seal.sql). When the sealing lock is free
--      (pg_try_advisory_xact_lock, no waiting) it seals: the committed journal first, then this
--      batch, positions and hashes assigned now and the lock held to commit, as with one writer it
--      always was. When another transaction holds it, the batch goes to ledger_journal with no
--      position and this transaction commits without waiting for anyone; the look at the journal
--      append() makes right after the commit (or the sealer it hands over to) gives the positions a
--      few milliseconds later. Each row returned says what that after-commit step must be
--      (out_after, the flight lock in seal.sql): 'none' for a sealer alone, 'look' or 'wait'.
--
-- Projections, stream versions and balance checks are all done by step 4, in this transaction,
-- whichever way step 5 goes. The journal's sequence number is drawn only after every row lock of
-- steps 1-4 is held, so two batches that touch a common stream, account or pending transfer are
-- journalled, and sealed, in the order they committed.
--
-- Errors use SQLSTATE class LG so the Python side can map them to precise exceptions:
--   LG001 stream version conflict   LG002 unbalanced postings   LG003 balance constraint
--   LG004 pending transfer not open LG005 pending transfer already exists
--   LG006 an amount that is not a whole number
CREATE OR REPLACE FUNCTION ledger_append(p jsonb)
RETURNS TABLE(out_position bigint, out_version integer, out_hash bytea, out_recorded_at timestamptz,
              out_after text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    s jsonb;
    o jsonb;
    v_count integer;
    v_expected integer;
    v_base integer;
    v_bases jsonb := '{}'::jsonb;
    v_accounts jsonb;
    v_bad record;
    v_violation text;
    v_lines jsonb;
    v_own jsonb;
    v_after text;
BEGIN
    -- Shared with every other writer; `ledger rebuild` takes it exclusively to freeze the projections.
    PERFORM pg_advisory_xact_lock_shared(7295317);

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

    -- 2. amounts are whole numbers (numeric(78,0) would round 0.5 + 0.5 - 1, which sums to zero, to
    --    1 + 1 - 1, which does not), then postings balance per event and asset (posted and pending apart)
    FOR v_bad IN
        SELECT ev.ordinality AS idx, ln.ordinality AS line
        FROM jsonb_array_elements(p->'events') WITH ORDINALITY AS ev(value, ordinality),
             jsonb_array_elements(ev.value->'lines') WITH ORDINALITY AS ln(value, ordinality)
        WHERE NOT (coalesce(ln.value->>2, '') ~ '^-?[0-9]{1,78}$' AND coalesce(ln.value->>3, '') ~ '^-?[0-9]{1,78}$'
                   AND coalesce(ln.value->>4, '') ~ '^-?[0-9]{1,78}$')
        LIMIT 1
    LOOP
        RAISE EXCEPTION 'posting % of event % has an amount that is not a whole number', v_bad.line, v_bad.idx
            USING ERRCODE = 'LG006';
    END LOOP;
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

    -- 3. accounts (created on first use with the policy the caller declared; usually they all exist)
    SELECT coalesce(jsonb_object_agg(a.path, a.id), '{}'::jsonb) INTO v_accounts
    FROM ledger_account a
    WHERE a.path IN (SELECT x->>'path' FROM jsonb_array_elements(p->'accounts') AS x);
    IF (SELECT count(*) FROM jsonb_object_keys(v_accounts)) < jsonb_array_length(p->'accounts') THEN
        INSERT INTO ledger_account(path, non_negative)
        SELECT x->>'path', (x->>'non_negative')::boolean
        FROM jsonb_array_elements(p->'accounts') AS x
        ORDER BY 1
        ON CONFLICT (path) DO NOTHING;
        SELECT coalesce(jsonb_object_agg(a.path, a.id), '{}'::jsonb) INTO v_accounts
        FROM ledger_account a
        WHERE a.path IN (SELECT x->>'path' FROM jsonb_array_elements(p->'accounts') AS x);
    END IF;

    -- 4. pending transfers, in id order (a fixed lock order, so writers never deadlock)
    FOR o IN SELECT x.value FROM jsonb_array_elements(coalesce(p->'pending', '[]'::jsonb)) WITH ORDINALITY AS x
             ORDER BY x.value->>'id', x.ordinality LOOP
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

    -- 5. balances: one upsert per (account, asset), in a fixed order so writers never deadlock; the
    --    running totals each posting stores (for as-of) follow from the new balance by a window sum.
    WITH lines AS (
        SELECT (ev.ordinality - 1)::integer AS ev_idx, (ln.ordinality - 1)::integer AS line_no,
               (v_accounts->>(ln.value->>0))::bigint AS acc, ln.value->>1 AS asset,
               (ln.value->>2)::numeric AS posted, (ln.value->>3)::numeric AS pin, (ln.value->>4)::numeric AS pout,
               ln.value->>5 AS pend
        FROM jsonb_array_elements(p->'events') WITH ORDINALITY AS ev(value, ordinality),
             jsonb_array_elements(ev.value->'lines') WITH ORDINALITY AS ln(value, ordinality)
    ), groups AS (
        SELECT acc, asset, sum(posted) AS posted, sum(pin) AS pin, sum(pout) AS pout
        FROM lines GROUP BY acc, asset
    ), totals AS (
        INSERT INTO ledger_balance AS b (account_id, asset, posted, pending_in, pending_out)
        SELECT acc, asset, posted, pin, pout FROM groups ORDER BY acc, asset
        ON CONFLICT (account_id, asset) DO UPDATE
            SET posted = b.posted + EXCLUDED.posted,
                pending_in = b.pending_in + EXCLUDED.pending_in,
                pending_out = b.pending_out + EXCLUDED.pending_out
        RETURNING b.account_id, b.asset, b.posted, b.pending_in, b.pending_out
    ), detailed AS (
        SELECT l.*,
               t.posted - g.posted + sum(l.posted) OVER w AS posted_after,
               t.pending_in - g.pin + sum(l.pin) OVER w AS pin_after,
               t.pending_out - g.pout + sum(l.pout) OVER w AS pout_after,
               (t.pending_in < 0 OR t.pending_out < 0
                OR (a.non_negative AND t.posted - t.pending_out < 0)) AS violates,
               a.path
        FROM lines l
        JOIN groups g ON g.acc = l.acc AND g.asset = l.asset
        JOIN totals t ON t.account_id = l.acc AND t.asset = l.asset
        JOIN ledger_account a ON a.id = l.acc
        WINDOW w AS (PARTITION BY l.acc, l.asset ORDER BY l.ev_idx, l.line_no)
    )
    SELECT jsonb_object_agg(x.ev_idx::text, x.lines), min(x.violation) INTO v_lines, v_violation
    FROM (SELECT ev_idx, min(CASE WHEN violates THEN path || ' ' || asset END) AS violation,
                 jsonb_agg(jsonb_build_array(line_no, acc, asset, posted, pin, pout, pend, posted_after, pin_after,
                                             pout_after) ORDER BY line_no) AS lines
          FROM detailed GROUP BY ev_idx) x;
    IF v_violation IS NOT NULL THEN
        RAISE EXCEPTION 'account % would go negative', v_violation
            USING ERRCODE = 'LG003', DETAIL = split_part(v_violation, ' ', 1);
    END IF;

    -- 5. seal now, or journal (see the header)
    SELECT jsonb_agg(jsonb_build_object(
               'event_id', ev.value->'event_id', 'stream', ev.value->'stream',
               'version', (v_bases->>(ev.value->>'stream'))::integer + (ev.value->>'ordinal')::integer,
               'type', ev.value->'type', 'schema_version', ev.value->'schema_version', 'data', ev.value->'data',
               'metadata', p->'metadata', 'body', ev.value->'body',
               'lines', coalesce(v_lines->((ev.ordinality - 1)::text), '[]'::jsonb)) ORDER BY ev.ordinality)
    INTO v_own
    FROM jsonb_array_elements(p->'events') WITH ORDINALITY AS ev(value, ordinality);

    IF coalesce((p->>'seal')::boolean, true) AND pg_try_advisory_xact_lock(7295316) THEN
        -- The flight lock (seal.sql), taken before the seal reads the journal: alone, no journalled
        -- append is in flight now and none can count on this transaction until it ends, so nothing
        -- needs a look after the commit.
        v_after := CASE WHEN pg_try_advisory_xact_lock(7295318) THEN 'none' ELSE 'look' END;
        RETURN QUERY SELECT sl.out_position, sl.out_version, sl.out_hash, sl.out_recorded_at, v_after
                     FROM ledger_seal_locked(v_own) sl;
    ELSE
        -- In flight until this transaction ends, so the sealer that holds the lock looks after its commit;
        -- refused only while a sealer alone holds it, whom this append then waits for after its commit.
        v_after := CASE WHEN pg_try_advisory_xact_lock_shared(7295318) THEN 'look' ELSE 'wait' END;
        INSERT INTO ledger_journal(event_id, stream_id, stream_version, event_type, schema_version, data, metadata,
                                   body, lines)
        SELECT (j->>'event_id')::uuid, j->>'stream', (j->>'version')::integer, j->>'type',
               (j->>'schema_version')::smallint, j->'data', j->'metadata', j->>'body', j->'lines'
        FROM jsonb_array_elements(v_own) WITH ORDINALITY AS x(j, n) ORDER BY n;
        RETURN QUERY SELECT NULL::bigint, (j->>'version')::integer, NULL::bytea, NULL::timestamptz, v_after
                     FROM jsonb_array_elements(v_own) WITH ORDINALITY AS x(j, n) ORDER BY n;
    END IF;
END;
$fn$;
"""

SEAL_AFTER_HOLDER_SQL = """
CREATE FUNCTION ledger_seal_after_holder()
RETURNS TABLE(out_status text, out_position bigint, out_hash bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    v_timeout text := current_setting('lock_timeout');
BEGIN
    PERFORM set_config('lock_timeout', '5s', true);
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(7295318);
    EXCEPTION WHEN lock_not_available THEN
        out_status := 'busy';
        RETURN NEXT;
        RETURN;
    END;
    PERFORM set_config('lock_timeout', v_timeout, true);  -- the bound is the wait's, not the seal's
    RETURN QUERY SELECT * FROM ledger_seal_waiting();
END;
$fn$;
"""

DROP_APPEND_SQL = "DROP FUNCTION ledger_append(jsonb)"
REVOKE_APPEND_SQL = "REVOKE ALL ON FUNCTION ledger_append(jsonb) FROM PUBLIC"
REVOKE_AFTER_HOLDER_SQL = "REVOKE ALL ON FUNCTION ledger_seal_after_holder() FROM PUBLIC"
DROP_AFTER_HOLDER_SQL = "DROP FUNCTION ledger_seal_after_holder()"

PREVIOUS_APPEND_SQL = import_module("ledger.migrations.0007_seal_in_commit_order").APPEND_SQL


class Migration(migrations.Migration):
    """A lone inline sealer skips the after-commit look; the flight lock tells it it is alone."""

    dependencies = [("ledger", "0008_seal_waiting_without_waiting")]

    operations = [
        migrations.RunSQL([SEAL_AFTER_HOLDER_SQL, REVOKE_AFTER_HOLDER_SQL], [DROP_AFTER_HOLDER_SQL]),
        migrations.RunSQL([DROP_APPEND_SQL, APPEND_SQL, REVOKE_APPEND_SQL],
                          [DROP_APPEND_SQL, PREVIOUS_APPEND_SQL, REVOKE_APPEND_SQL]),
    ]
