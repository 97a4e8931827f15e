"""safeload: data loads that expect failure, for Apache Airflow 3.

Contracts checked before a row moves, idempotent partition overwrites into PostgreSQL,
quality gates with per-check severity, and Slack alerts that the person on call wants.
Import operators from their modules (``safeload.operators.load`` ...): this package's
``__init__`` stays empty so that DAG parsing imports nothing it does not use.
"""

__version__ = "0.1.0"
