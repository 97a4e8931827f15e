"""safeload's own tables in the warehouse: load history, quarantine, staging registry, results.

They live in the ``safeload`` schema; staging tables in ``safeload_staging``. Created on
first use (idempotently, under an advisory lock so concurrent first runs do not race on
``CREATE TABLE IF NOT EXISTS``). Teams that create objects through migrations print
:data:`DDL` and run it as a DBA, then grant the loader what docs/security.md lists: it
then needs no CREATE on the database.
"""

from __future__ import annotations

from typing import Any

SCHEMA = "safeload"
STAGING_SCHEMA = "safeload_staging"
_DDL_LOCK_KEY = 7_160_318_200_001  # any constant; serialises the DDL below

DDL = f"""
create schema if not exists {SCHEMA};
create schema if not exists {STAGING_SCHEMA};

create table if not exists {SCHEMA}.load_history (
    id              bigserial primary key,
    target          text        not null,
    partition_value text        not null,
    status          text        not null check (status in ('published', 'refused', 'failed')),
    rows_loaded     bigint,
    rows_quarantined bigint,
    rows_source     bigint,
    checksum        text,
    source          text,
    dag_id          text,
    run_id          text,
    task_id         text,
    try_number      integer,
    started_at      timestamptz,
    staged_at       timestamptz,
    published_at    timestamptz,
    duration_s      double precision,
    schema_changes  jsonb,
    message         text
);
create index if not exists load_history_target_idx
    on {SCHEMA}.load_history (target, partition_value, id desc);

create table if not exists {SCHEMA}.quarantine (
    id              bigserial primary key,
    target          text        not null,
    partition_value text        not null,
    run_key         text        not null,
    source          text,
    line            bigint,
    raw             text,
    reason          text        not null,
    created_at      timestamptz not null default now()
);
create index if not exists quarantine_target_idx
    on {SCHEMA}.quarantine (target, partition_value, run_key);

create table if not exists {SCHEMA}.staging (
    staging_table   text primary key,
    target          text        not null,
    partition_value text        not null,
    run_key         text        not null,
    created_at      timestamptz not null default now(),
    rows_loaded     bigint      not null,
    rows_quarantined bigint     not null,
    rows_source     bigint      not null,
    checksum        text        not null,
    source          text,
    add_columns     jsonb       not null default '[]'
);

create table if not exists {SCHEMA}.quality_results (
    id              bigserial primary key,
    run_key         text,
    dag_id          text,
    run_id          text,
    task_id         text,
    target          text        not null,
    partition_value text,
    suite           text,
    expectation_type text       not null,
    column_name     text,
    kwargs          jsonb,
    severity        text        not null,
    success         boolean     not null,
    observed_value  jsonb,
    engine          text,
    checked_at      timestamptz not null default now()
);
create index if not exists quality_results_target_idx
    on {SCHEMA}.quality_results (target, checked_at desc);

-- What the contract check saw (SchemaContractCheckOperator): the drift events of the UI.
create table if not exists {SCHEMA}.contract_checks (
    id              bigserial primary key,
    target          text        not null,
    contract        text,
    source          text,
    policy          text,
    decision        text        not null,
    passed          boolean     not null,
    changes         jsonb       not null default '[]',
    dag_id          text,
    run_id          text,
    task_id         text,
    try_number      integer,
    checked_at      timestamptz not null default now()
);

-- For the UI (safeload/ui, docs/ui.md): latest load per table and paging by id, the
-- latest partition's checks, and everything one DAG run wrote, each one index probe.
create index if not exists load_history_target_id_idx
    on {SCHEMA}.load_history (target, id desc);
create index if not exists load_history_run_idx
    on {SCHEMA}.load_history (dag_id, run_id);
create index if not exists quality_results_partition_idx
    on {SCHEMA}.quality_results (target, partition_value, id);
create index if not exists quality_results_run_idx
    on {SCHEMA}.quality_results (dag_id, run_id);
create index if not exists contract_checks_target_idx
    on {SCHEMA}.contract_checks (target, id desc);
create index if not exists contract_checks_run_idx
    on {SCHEMA}.contract_checks (dag_id, run_id);
"""


def ensure_metadata(conn: Any) -> None:
    """Create safeload's schemas and tables if they are missing (idempotent, race-free)."""
    exists = conn.execute(
        "select to_regclass('safeload.load_history') is not null and to_regclass('safeload.staging') is not null"
        " and to_regclass('safeload.quality_results') is not null"
        # the latest additions: a database created by an earlier version gets them too
        " and to_regclass('safeload.contract_checks') is not null"
        " and to_regclass('safeload.contract_checks_run_idx') is not null"
    ).fetchone()[0]
    if exists:
        return
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))
        conn.execute(DDL)
