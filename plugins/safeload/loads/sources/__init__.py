"""The sources a load reads: files (CSV, gzipped CSV, JSON lines, Parquet) and query results.

Each gives the stage the same three things (:class:`~safeload.loads.sources.base.Source`):
its column names, its bytes for one straight ``COPY`` where the format allows it, and its
rows one by one for the checked path. Kept empty: import from the modules.
"""
