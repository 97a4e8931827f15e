"""The publish strategies: how a staged partition replaces the target's.

One interface (:class:`~safeload.loads.publish.strategy.PublishStrategy`), one module per
strategy (:mod:`.swap`, :mod:`.delete_insert`), and :mod:`.choice`, which says which
strategies ``publish_strategy`` tries and in what order. Kept empty: import from the
modules. See docs/decisions/002-write-audit-publish.md and 015-publish-strategies.md.
"""
