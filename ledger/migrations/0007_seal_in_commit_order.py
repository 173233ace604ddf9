from importlib import import_module

from django.db import migrations

# Sealing (issue 16): ledger_append no longer holds one global lock through every commit. The texts
# below are ledger/sql/seal.sql and ledger/sql/append.sql as this migration shipped.

SEAL_SQL = """-- Sealing: positions, recorded_at and the hash chain, assigned in commit order.
--
-- A batch ledger_append could not seal at once (another transaction held the sealing lock) waits in
-- ledger_journal, committed with its projections but with no position. Whoever next holds the sealing
-- lock (advisory 7295316, transaction-scoped) seals every committed journal row in journal order and
-- then its own batch, if it has one: positions follow the head with no gap, each hash chains the
-- previous one, the rows move into ledger_event and ledger_posting and leave the journal, and the
-- head moves, all in the sealer's transaction, which commits before the lock is released. So a reader
-- of ledger_event (tailing by position, as-of, exports, attestations) only ever sees a gapless
-- sealed prefix, growing in position order.
--
-- Why journal order is a commit order the log can use: a journal row's sequence number is drawn after
-- its transaction holds every row lock it needs (stream, accounts' balances, pending transfers), so of
-- two batches that touch anything in common the later one both commits and is numbered after the
-- earlier. Batches with nothing in common may be sealed in either order: no stream version, running
-- total or pending transfer depends on that order. A journal row whose transaction has not committed
-- yet is invisible to the sealer and is sealed by a later round, after everything already sealed.

CREATE TABLE ledger_journal (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL,
    stream_id text NOT NULL,
    stream_version integer NOT NULL,
    event_type text NOT NULL,
    schema_version smallint NOT NULL,
    data jsonb NOT NULL,
    metadata jsonb NOT NULL,
    body text NOT NULL,
    lines jsonb NOT NULL  -- [[line_no, account_id, asset, posted, pin, pout, pending_id, after x3], ...]
);
-- A queue: rows live for milliseconds, so vacuum it often.
ALTER TABLE ledger_journal SET (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0,
                                autovacuum_vacuum_insert_threshold = 1000);

-- Journal rows are never changed; one leaves only once its event is in the sealed log.
CREATE FUNCTION ledger_journal_guard() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $fn$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM ledger_event e WHERE e.event_id = OLD.event_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the ledger is append-only: % on % refused (only a sealed event leaves the journal)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'LG010';
END;
$fn$;
CREATE TRIGGER ledger_journal_guard BEFORE UPDATE OR DELETE ON ledger_journal
    FOR EACH ROW EXECUTE FUNCTION ledger_journal_guard();
CREATE TRIGGER ledger_journal_no_truncate BEFORE TRUNCATE ON ledger_journal
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- ledger_seal_locked(own): seal the committed journal, then `own` (a batch of this transaction, in the
-- journal's row shape as jsonb), returning own's positions. The caller holds the sealing lock.
CREATE FUNCTION ledger_seal_locked(own jsonb)
RETURNS TABLE(out_position bigint, out_version integer, out_hash bytea, out_recorded_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    r record;
    v_pos bigint;
    v_hash bytea;
    v_ts timestamptz := clock_timestamp();
    v_ts_text text;
    a_seq bigint[] := '{}';
    a_pos bigint[] := '{}';
    a_lines jsonb[] := '{}';
    v_seqscan text := current_setting('enable_seqscan');
BEGIN
    -- The journal is a queue: a few live rows among many dead ones between vacuums. Read it by its
    -- index, never by scanning the heap (the plans are cached with this setting on first use). Set
    -- here, not as the function's SET clause, which made every call several times slower.
    PERFORM set_config('enable_seqscan', 'off', true);
    v_ts_text := to_char(v_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    SELECT h.position, h.hash INTO v_pos, v_hash FROM ledger_head h WHERE h.id = 1;
    FOR r IN
        SELECT * FROM (
            SELECT 0 AS src, j.seq AS ord, j.seq, j.event_id, j.stream_id, j.stream_version, j.event_type,
                   j.schema_version, j.data, j.metadata, j.body, j.lines
            FROM ledger_journal j
            UNION ALL
            SELECT 1, x.n, NULL, (x.o->>'event_id')::uuid, x.o->>'stream', (x.o->>'version')::integer, x.o->>'type',
                   (x.o->>'schema_version')::smallint, x.o->'data', x.o->'metadata', x.o->>'body', x.o->'lines'
            FROM jsonb_array_elements(coalesce(own, '[]'::jsonb)) WITH ORDINALITY AS x(o, n)
        ) u ORDER BY u.src, u.ord
    LOOP
        v_pos := v_pos + 1;
        v_hash := sha256(v_hash || convert_to(
            '{"event":' || r.body || ',"position":' || v_pos || ',"recorded_at":"' || v_ts_text
            || '","version":' || r.stream_version || '}', 'UTF8'));
        INSERT INTO ledger_event(position, event_id, stream_id, stream_version, event_type, schema_version,
                                 data, metadata, recorded_at, hash)
        VALUES (v_pos, r.event_id, r.stream_id, r.stream_version, r.event_type, r.schema_version, r.data, r.metadata,
                v_ts, v_hash);
        IF jsonb_array_length(r.lines) > 0 THEN
            a_pos := a_pos || v_pos;
            a_lines := a_lines || r.lines;
        END IF;
        IF r.src = 0 THEN
            a_seq := a_seq || r.seq;
        ELSE
            out_position := v_pos;
            out_version := r.stream_version;
            out_hash := v_hash;
            out_recorded_at := v_ts;
            RETURN NEXT;
        END IF;
    END LOOP;
    IF cardinality(a_pos) > 0 THEN
        INSERT INTO ledger_posting(position, line_no, account_id, asset, posted_delta, pending_in_delta,
                                   pending_out_delta, pending_id, posted_after, pending_in_after, pending_out_after)
        SELECT u.pos, (l->>0)::smallint, (l->>1)::bigint, l->>2, (l->>3)::numeric, (l->>4)::numeric,
               (l->>5)::numeric, l->>6, (l->>7)::numeric, (l->>8)::numeric, (l->>9)::numeric
        FROM unnest(a_pos, a_lines) AS u(pos, lines), jsonb_array_elements(u.lines) AS l;
    END IF;
    IF cardinality(a_seq) > 0 THEN
        DELETE FROM ledger_journal WHERE seq = ANY(a_seq);
    END IF;
    PERFORM set_config('enable_seqscan', v_seqscan, true);
    UPDATE ledger_head SET position = v_pos, hash = v_hash WHERE id = 1 AND position <> v_pos;
END;
$fn$;
REVOKE ALL ON FUNCTION ledger_seal_locked(jsonb) FROM PUBLIC;

-- ledger_seal(event_ids): seal the journal (waiting for the sealing lock) unless those events are
-- sealed already, and return their sealed positions. The application calls it right after the commit
-- of an append that was journalled; the periodic sealer calls it with no ids (seal whatever waits).
CREATE FUNCTION ledger_seal(event_ids uuid[])
RETURNS TABLE(out_event_id uuid, out_position bigint, out_version integer, out_hash bytea,
              out_recorded_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(7295316);
    -- Sealed already (by the sealer this call waited for), or nothing asked: no write, no commit flush.
    IF cardinality(event_ids) IS NULL OR cardinality(event_ids) = 0
       OR (SELECT count(*) FROM ledger_event e WHERE e.event_id = ANY(event_ids)) < cardinality(event_ids) THEN
        PERFORM ledger_seal_locked(NULL);
    END IF;
    RETURN QUERY SELECT e.event_id, e.position, e.stream_version, e.hash, e.recorded_at
                 FROM ledger_event e WHERE e.event_id = ANY(event_ids) ORDER BY e.position;
END;
$fn$;
REVOKE ALL ON FUNCTION ledger_seal(uuid[]) FROM PUBLIC;
"""

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
--      position and this transaction commits without waiting for anyone: ledger_seal(), which
--      append() calls right after the commit, gives the positions a few milliseconds later.
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
RETURNS TABLE(out_position bigint, out_version integer, out_hash bytea, out_recorded_at timestamptz)
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
        RETURN QUERY SELECT sl.out_position, sl.out_version, sl.out_hash, sl.out_recorded_at
                     FROM ledger_seal_locked(v_own) sl;
    ELSE
        INSERT INTO ledger_journal(event_id, stream_id, stream_version, event_type, schema_version, data, metadata,
                                   body, lines)
        SELECT (j->>'event_id')::uuid, j->>'stream', (j->>'version')::integer, j->>'type',
               (j->>'schema_version')::smallint, j->'data', j->'metadata', j->>'body', j->'lines'
        FROM jsonb_array_elements(v_own) WITH ORDINALITY AS x(j, n) ORDER BY n;
        RETURN QUERY SELECT NULL::bigint, (j->>'version')::integer, NULL::bytea, NULL::timestamptz
                     FROM jsonb_array_elements(v_own) WITH ORDINALITY AS x(j, n) ORDER BY n;
    END IF;
END;
$fn$;
"""

UNDO_SEAL_SQL = """
DROP FUNCTION ledger_seal(uuid[]);
DROP FUNCTION ledger_seal_locked(jsonb);
DROP TABLE ledger_journal;
DROP FUNCTION ledger_journal_guard();
"""

PREVIOUS_APPEND_SQL = import_module("ledger.migrations.0005_append_as_owner").APPEND_SQL


class Migration(migrations.Migration):
    """Seal positions and hashes in commit order, journalling the batches that find the lock taken."""

    dependencies = [("ledger", "0006_drop_ledger_idempotency")]

    operations = [
        migrations.RunSQL(SEAL_SQL, UNDO_SEAL_SQL),
        migrations.RunSQL(APPEND_SQL, PREVIOUS_APPEND_SQL),
    ]
