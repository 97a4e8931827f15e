-- Target of the payments_incremental reference DAG: natively partitioned by the
-- payment's business date. A late or changed payment republishes its whole day
-- (see dags/payments_incremental.py and docs/decisions/012).
create table if not exists public.payments (
    payment_id   bigint        not null,
    payment_date date          not null,
    order_id     bigint        not null,
    amount       numeric(12,2) not null,
    currency     char(3)       not null,
    status       text          not null,
    paid_at      timestamptz   not null,
    updated_at   timestamptz   not null,
    primary key (payment_date, payment_id)
) partition by range (payment_date);
