-- Target of the orders_daily reference DAG: natively partitioned by day.
-- Partitions are created by the loader on first load of a day (see docs/decisions/002).
create table if not exists public.orders (
    order_id    bigint        not null,
    order_date  date          not null,
    customer_id bigint        not null,
    amount      numeric(12,2) not null,
    currency    char(3)       not null,
    status      text          not null,
    created_at  timestamptz   not null,
    primary key (order_date, order_id)
) partition by range (order_date);
