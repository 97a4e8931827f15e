"""The operators with an object as ``source``, under ``dag.test()``, against a real S3 API
on 127.0.0.1 (moto's server mode) reached through an Airflow ``aws`` connection
(``AIRFLOW_CONN_S3_TEST`` with an ``endpoint_url`` extra) named in the URL, as Airflow's
``ObjectStoragePath`` takes it: wait (sensor, poke mode) >> contract check >> stage (held
to the version the check read) >> publish, and the one-task overwrite given an
``ObjectStoragePath`` (its path templated too); each publishes the rows and checksum the
local file gives. Then the same chain on ``gs://`` and ``abfs://`` URLs against a real GCS
JSON API (gcp-storage-emulator) and a real Azure Blob API (Azurite): no installed provider
gives Airflow a filesystem for them, so a URL without a connection is read through gcsfs
or adlfs with the credentials of the environment, and one that names a connection is
refused with the fix."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pendulum
import pytest
from dagrun import dag_from_file

from safeload.loads.sql import partition_checksum

ROOT = Path(__file__).resolve().parents[3]
CONTRACT = str(ROOT / "include" / "contracts" / "orders.yaml")
sys.path.insert(0, str(ROOT / "include"))

#: wait >> check >> stage (held to the version the check read) >> publish, on ``source``
#: (``{{ ds }}`` in it), and ``more`` after them
DAG_FILE = """
import pendulum
from airflow.sdk import DAG, ObjectStoragePath

from safeload.operators.contract import SchemaContractCheckOperator
from safeload.operators.load import PartitionOverwriteOperator, PublishPartitionOperator, StagePartitionOperator
from safeload.sensors.source import SourceReadySensor

SOURCE = "{source}"

with DAG("{dag_id}", schedule="@daily", start_date=pendulum.datetime(2024, 5, 1, tz="UTC"),
         catchup=False) as dag:
    wait = SourceReadySensor(task_id="wait", path=SOURCE, marker="{{path}}.done", poke_interval=1, timeout=60)
    check = SchemaContractCheckOperator(task_id="check", contract={contract!r}, source=SOURCE, history_conn_id=None)
    stage = StagePartitionOperator(task_id="stage", contract={contract!r}, source=SOURCE,
                                   source_version="{{{{ ti.xcom_pull(task_ids='check')['source_version'] }}}}")
    publish = PublishPartitionOperator(task_id="publish", contract={contract!r}, stage_task_id="stage")
    wait >> check >> stage >> publish
{more}"""

#: the S3 DAG's last task: the one-task overwrite given an ObjectStoragePath
OVERWRITE = """    overwrite = PartitionOverwriteOperator(
        task_id="overwrite", contract={contract!r}, partition_value="2024-05-03",
        source=ObjectStoragePath("s3://{bucket}/orders/{{{{ macros.ds_add(ds, 1) }}}}.csv", conn_id="s3_test"))
    publish >> overwrite
"""


@pytest.fixture
def airflow_env(airflow_db, pg_uri, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", pg_uri)


def test_operators_load_objects_like_local_files(pg, pg_uri, s3, airflow_env, tmp_path, monkeypatch):
    import generate_orders

    from tests.integration.loads.orders import loader

    pg.execute((ROOT / "include" / "sql" / "orders.sql").read_text())
    files = {}
    for day in (dt.date(2024, 5, 2), dt.date(2024, 5, 3)):
        files[day] = str(generate_orders.write(tmp_path / day.isoformat(), day, 300, set()))
        s3.put(f"orders/{day}.csv", files[day])
    s3.put("orders/2024-05-02.csv.done", b"")
    # the local files' partitions, for the comparison, in a table of their own
    pg.execute("create table public.local_orders (like public.orders including all)")
    local = {}
    for day, path in files.items():
        loader(pg_uri, day.isoformat(), run_key=f"local-{day}", table="public.local_orders").run(path)
        local[day] = partition_checksum(pg, "public.local_orders", "order_date", day.isoformat())

    dag = dag_from_file(tmp_path, monkeypatch, "object_dag", DAG_FILE.format(
        dag_id="object_source_ops", source=f"s3://s3_test@{s3.name}/orders/{{{{ ds }}}}.csv", contract=CONTRACT,
        more=OVERWRITE.format(bucket=s3.name, contract=CONTRACT)))
    dr = dag.test(logical_date=pendulum.datetime(2024, 5, 2, tz="UTC"))
    assert dr.state == "success", {ti.task_id: ti.state for ti in dr.get_task_instances()}
    for day in files:
        assert partition_checksum(pg, "public.orders", "order_date", day.isoformat()) == local[day]
    sources = [r[0] for r in pg.execute("select source from safeload.load_history where target = 'public.orders' "
                                        "and status = 'published' order by id").fetchall()]
    assert sources == [s3.airflow_url("orders/2024-05-02.csv"), s3.airflow_url("orders/2024-05-03.csv")]


#: each store without its Airflow provider: how its fsspec filesystem finds the local server
#: with no options (the environment, as a deployment's credentials are), the provider and
#: an example connection id of the refusal
WITHOUT_PROVIDER = {
    # gcsfs: STORAGE_EMULATOR_HOST; with no Google credentials here (tests/conftest.py sets
    # NO_GCE_CHECK: no metadata server is asked) it reads anonymously
    "gcs": (lambda server: {"STORAGE_EMULATOR_HOST": server.endpoint}, "apache-airflow-providers-google",
            "gcp_lake"),
    # adlfs: the storage account's connection string
    "azure": (lambda server: {"AZURE_STORAGE_CONNECTION_STRING": server.connection_string()},
              "apache-airflow-providers-microsoft-azure", "wasb_lake"),
}


@pytest.mark.parametrize("kind", ["gcs", "azure"])
def test_operators_load_objects_through_fsspec_without_a_provider(pg, pg_uri, kind, airflow_env, tmp_path,
                                                                  monkeypatch, request):
    import generate_orders

    from safeload.errors import SourceError
    from safeload.hooks import stored_source
    from tests.integration.loads.orders import loader

    store = request.getfixturevalue(kind)
    environment, provider, conn_id = WITHOUT_PROVIDER[kind]
    for name, value in environment(store.server).items():
        monkeypatch.setenv(name, value)
    pg.execute((ROOT / "include" / "sql" / "orders.sql").read_text())
    day = dt.date(2024, 5, 2)
    path = str(generate_orders.write(tmp_path / "local", day, 300, set()))
    url = store.put(f"orders/{day}.csv", path)
    store.put(f"orders/{day}.csv.done", b"")
    pg.execute("create table public.local_orders (like public.orders including all)")
    loader(pg_uri, day.isoformat(), run_key="local", table="public.local_orders").run(path)

    scheme = url.split("://")[0]
    dag = dag_from_file(tmp_path, monkeypatch, f"{kind}_dag", DAG_FILE.format(
        dag_id=f"{kind}_source_ops", source=f"{scheme}://{store.name}/orders/{{{{ ds }}}}.csv", contract=CONTRACT,
        more=""))
    dr = dag.test(logical_date=pendulum.datetime(2024, 5, 2, tz="UTC"))
    assert dr.state == "success", {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert (partition_checksum(pg, "public.orders", "order_date", day.isoformat())
            == partition_checksum(pg, "public.local_orders", "order_date", day.isoformat()))
    assert pg.execute("select source from safeload.load_history where target = 'public.orders' and status = "
                      "'published'").fetchall() == [(url,)]
    with pytest.raises(SourceError, match=rf"names the Airflow connection '{conn_id}', but no installed provider "
                                          rf"gives Airflow a filesystem for {scheme}://; install .*{provider}"):
        stored_source(f"{scheme}://{conn_id}@{store.name}/orders/{day}.csv")
    # an ObjectStoragePath object takes the same way as its URL
    from airflow.sdk import ObjectStoragePath

    obj = stored_source(ObjectStoragePath(url))
    assert obj.identity().version == store.version(f"orders/{day}.csv")
    with pytest.raises(SourceError, match=r"nowhere://lake/x.csv: Unsupported filesystem: 'nowhere'; give a URL"):
        stored_source("nowhere://lake/x.csv")
