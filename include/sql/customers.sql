-- customers_scd2: daily snapshots (one partition per day, loaded idempotently) and the
-- SCD Type 2 dimension rebuilt from them (see dags/customers_scd2.py for why).
create table if not exists public.customers_snapshot (
    snapshot_date date    not null,
    customer_id   bigint  not null,
    name          text    not null,
    email         text    not null,
    country       char(2) not null,
    segment       text    not null,
    primary key (snapshot_date, customer_id)
) partition by range (snapshot_date);

create table if not exists public.dim_customers (
    customer_id bigint  not null,
    valid_from  date    not null,
    valid_to    date    not null,  -- exclusive; 9999-12-31 while current
    is_current  boolean not null,
    row_hash    text    not null,  -- md5 of the tracked columns: change detection
    name        text    not null,
    email       text    not null,
    country     char(2) not null,
    segment     text    not null,
    primary key (customer_id, valid_from)
);
create index if not exists dim_customers_current on public.dim_customers (customer_id) where is_current;
