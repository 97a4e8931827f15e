"""The parts of the ``sql`` quality engine (:mod:`safeload.quality.sql_engine`).

:mod:`.catalog` (what the catalogue says about the table, and the uniqueness proofs it
gives), :mod:`.plan` (the one scan: its aggregates and its SQL), one compile unit per
family of expectation types (:mod:`.checks_schema`, :mod:`.checks_metrics`,
:mod:`.checks_values`, :mod:`.checks_unique`) behind :mod:`.compile`, the rewrites that
cut per-row work (:mod:`.grouping`, :mod:`.regex_memo`), GX's rules for turning values
into results (:mod:`.results`), and :mod:`.execute`. Kept empty: import from the modules.
"""
