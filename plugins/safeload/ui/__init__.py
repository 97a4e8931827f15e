"""The safeload page inside the Airflow UI: load, quality, drift and quarantine history.

``queries`` (SQL, read-only) and ``render`` (HTML with inline SVG) import nothing from
Airflow; ``app`` is the FastAPI app the plugin mounts at ``/safeload``; ``links`` is the
operator extra link from a task instance to its report. See docs/ui.md.
"""
