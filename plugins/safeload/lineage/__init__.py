"""OpenLineage events of safeload's loads, quality gates and contract checks.

safeload's operators implement the OpenLineage provider's operator interface
(``get_openlineage_facets_on_start`` / ``_on_complete`` / ``_on_failure``) through the
mixins of :mod:`safeload.lineage.operators`, which import nothing at DAG parse time. The
rest of this package is imported only when the provider's listener asks for lineage:

``naming``     dataset namespaces and names (files, object stores, PostgreSQL tables); pure
``facets``     safeload's custom facets (their JSON schemas are in ``schemas/``)
``builders``   standard and custom facets from safeload's results (contract, drift report,
               staging and publish results, gate report); no Airflow, no database
``catalog``    the few catalogue reads an event needs (columns, a partition's size)
``provider``   the thin bridge to the provider: its dataset naming and SQL parser
``checks``     the events of contract checks and quality gates
``loads``      the events of partition loads, incremental reloads and SCD2 rebuilds

Without ``apache-airflow-providers-openlineage`` installed, no listener calls these
methods and nothing here is imported. docs/lineage.md says what reaches the catalogue.
"""
