"""Staging: the table a stage fills (:mod:`.table`), its registry row (:mod:`.registry`),
the fill itself (:mod:`.fill`: one straight COPY, or row by row with quarantine), and the
rows it rejects (:mod:`.quarantine`). Kept empty: import from the modules.
"""
