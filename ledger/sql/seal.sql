-- Sealing: positions, recorded_at and the hash chain, assigned in commit order.
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
--
-- Who seals a journalled batch, with no one waiting for the sealing lock: the flight lock (advisory
-- 7295318, transaction-scoped) decides. A journalled append holds it shared, taken before its journal
-- row, until its commit. An append that seals inline tries it exclusively right after the sealing lock
-- and before reading the journal:
--   - got it ('none'): it is alone. No journalled append was in flight, so every journal row already
--     committed is in its snapshot, and none can commit counting on it: an append that finds both locks
--     taken ('wait') waits, after its own commit, for this one to end (ledger_seal_after_holder) and
--     then looks. So a lone sealer makes no look after its commit: one statement per command.
--   - refused ('look'): someone is in flight; after its commit it looks at the journal, and so does the
--     journalled append that got the flight lock ('look'). Whichever finds the sealing lock free seals;
--     one that finds it taken leaves it to the holder: an inline sealer then saw it in flight (it looks),
--     a look that sealed looks again after its commit (ledger_seal_waiting).
-- A journal row that misses all of these (its writer died between commit and look) is sealed by the
-- next append that seals inline or by the periodic sealer.
--
-- One append may wait for the sealing lock instead of journalling (ledger_take_sealing_lock): the
-- holder's commit is usually a flush away, and sealing inline then costs no second commit for the
-- seal, which is what a journalled append's events need. The queue lock (advisory 7295319, session-
-- scoped) makes it one: it is held from the start of the wait until the sealing lock is got, then
-- handed on, so the next append may wait while this one seals. The others journal meanwhile, and the
-- waiter's seal takes in what they committed. The wait is bounded (the batch's wait_ms): past it, or
-- when the holder would wait for the waiter's row locks (a caller's transaction that goes on after its
-- append), the waiter journals too.

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

-- ledger_seal_waiting(): seal what waits in the journal if nobody holds the sealing lock now, without
-- waiting for it. 'empty': nothing waits; 'sealed': this call sealed it, and returns the head it left;
-- 'busy': another transaction holds the lock. Every transaction that held the lock calls this right
-- after its commit (append's after-commit hook, again after each 'sealed'), so an event journalled while
-- the lock was held, and missed by the holder's snapshot, is sealed by the holder's look after its
-- commit, or, if that finds the lock taken again, by the look of whoever holds it then. A journalled
-- append therefore commits and returns without ever waiting for the lock.
CREATE FUNCTION ledger_seal_waiting()
RETURNS TABLE(out_status text, out_position bigint, out_hash bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ledger_journal j ORDER BY j.seq LIMIT 1) THEN
        out_status := 'empty';
    ELSIF NOT pg_try_advisory_xact_lock(7295316) THEN
        out_status := 'busy';
    ELSE
        PERFORM ledger_seal_locked(NULL);
        out_status := 'sealed';
        SELECT h.position, h.hash INTO out_position, out_hash FROM ledger_head h WHERE h.id = 1;
    END IF;
    RETURN NEXT;
END;
$fn$;
REVOKE ALL ON FUNCTION ledger_seal_waiting() FROM PUBLIC;

-- ledger_seal_after_holder(): for an append journalled while a sealer alone held the lock ('wait'):
-- wait, after this append's commit, for that sealer to end (it holds the flight lock exclusively to its
-- commit; this append holds nothing by now), then look as ledger_seal_waiting does. A sealer that does
-- not end within five seconds is left to the periodic sealer ('busy').
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
REVOKE ALL ON FUNCTION ledger_seal_after_holder() FROM PUBLIC;

-- ledger_take_sealing_lock(wait_ms): called by ledger_append when it found the sealing lock taken. If no
-- other append is waiting for it (the queue lock), wait up to wait_ms for it. True once held. Runs with
-- ledger_append's search_path (names are qualified all the same), without a SET clause, which would cost
-- every call a configuration save and restore.
CREATE FUNCTION ledger_take_sealing_lock(wait_ms integer)
RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    v_timeout text;
    v_got boolean := false;
BEGIN
    IF wait_ms <= 0 OR NOT pg_catalog.pg_try_advisory_lock(7295319) THEN
        RETURN false;
    END IF;
    v_timeout := pg_catalog.current_setting('lock_timeout');
    PERFORM pg_catalog.set_config('lock_timeout', wait_ms || 'ms', true);
    BEGIN
        PERFORM pg_catalog.pg_advisory_xact_lock(7295316);
        v_got := true;
    EXCEPTION
        WHEN lock_not_available THEN
            v_got := false;
        WHEN query_canceled OR OTHERS THEN  -- (OTHERS leaves cancels out) hand the queue lock on, then fail
            PERFORM pg_catalog.pg_advisory_unlock(7295319);
            RAISE;
    END;
    PERFORM pg_catalog.set_config('lock_timeout', v_timeout, true);
    PERFORM pg_catalog.pg_advisory_unlock(7295319);
    RETURN v_got;
END;
$fn$;
REVOKE ALL ON FUNCTION ledger_take_sealing_lock(integer) FROM PUBLIC;
