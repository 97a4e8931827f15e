"""Who to ping and what to read: Slack mentions and runbooks from a mapping the team keeps.

Pure: no Airflow import. The mapping is JSON, kept in the Slack connection's extra
(``"contacts": {...}``) or in Airflow's configuration (``[safeload] alert_contacts``):

.. code-block:: json

    {
      "owners":  {"data-platform": "S0123ABCD",
                  "alice": {"mention": "U024BE7LH", "runbook": "https://wiki.example.com/alice"}},
      "dags":    {"orders_daily": {"mention": "<!subteam^S0999ZZZ|@orders-oncall>",
                                   "runbook": "https://wiki.example.com/runbooks/orders"}},
      "default": {"mention": "S0123ABCD", "runbook": "https://wiki.example.com/runbooks"}
    }

A mention is a Slack member ID (``U…``/``W…``), a user group ID (``S…``), ``@here`` or
``@channel``, or Slack's own syntax (``<@U…>``, ``<!subteam^S…>``). Display names
(``@alice``) cannot be used: Slack does not resolve them in messages sent by an app.

Resolution, first match wins: the notifier's own ``mention`` / ``runbook``; the DAG's
entry under ``dags``; for the runbook then a DAG param ``runbook`` and a link in the
DAG's ``doc_md`` whose text or address says "runbook"; the task owners' entries under
``owners`` (several owners, comma-separated, are all pinged); ``default``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SECTIONS = ("owners", "dags", "default")
_SLACK_SYNTAX = re.compile(r"^<(@[UW][A-Z0-9]{2,}|!subteam\^S[A-Z0-9]{2,}(\|[^<>]*)?|!here|!channel)>$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{6,}$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]{6,}$")
_URL = re.compile(r"^https?://\S+$")
_MD_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_BARE_LINK = re.compile(r"runbook[^\n:]*:\s*<?(https?://[^\s>)]+)", re.IGNORECASE)


class ContactsError(ValueError):
    """The mapping breaks a rule; the message names the source, the entry and the fix."""


@dataclass(frozen=True)
class Contact:
    """Who to ping (Slack mention syntax, several separated by spaces) and the runbook."""

    mention: str | None = None
    runbook: str | None = None


@dataclass(frozen=True)
class Contacts:
    """The parsed mapping. ``source`` names where it came from, for error messages."""

    owners: Mapping[str, Contact] = field(default_factory=dict)
    dags: Mapping[str, Contact] = field(default_factory=dict)
    default: Contact = Contact()
    source: str = "contacts"

    def merged(self, other: Contacts) -> Contacts:
        """This mapping with ``other``'s entries on top (``other`` wins per entry)."""
        return Contacts(owners={**self.owners, **other.owners}, dags={**self.dags, **other.dags},
                        default=Contact(other.default.mention or self.default.mention,
                                        other.default.runbook or self.default.runbook),
                        source=f"{self.source} + {other.source}")

    def owner(self, name: str) -> Contact | None:
        if name in self.owners:
            return self.owners[name]
        folded = {k.casefold(): v for k, v in self.owners.items()}
        return folded.get(name.casefold())


def mention(value: Any, where: str) -> str:
    """One mention in Slack's syntax, from an ID, ``@here``/``@channel`` or the syntax itself."""
    text = str(value).strip() if isinstance(value, str) else None
    if text and _SLACK_SYNTAX.match(text):
        return text
    if text and _USER_ID.match(text):
        return f"<@{text}>"
    if text and _GROUP_ID.match(text):
        return f"<!subteam^{text}>"
    if text and text.lstrip("@!").lower() in ("here", "channel"):
        return f"<!{text.lstrip('@!').lower()}>"
    raise ContactsError(
        f"{where}: {value!r} is not a Slack mention; use a member ID (U024BE7LH: in Slack, a "
        "profile's ⋮ menu → Copy member ID), a user group ID (S0123ABCD), @here, @channel, "
        "or <@U…>/<!subteam^S…>; display names such as @alice do not ping from an app"
    )


def _mentions(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    values = value if isinstance(value, (list, tuple)) else [value]
    return " ".join(dict.fromkeys(mention(v, f"{where}[{i}]" if len(values) > 1 else where)
                                  for i, v in enumerate(values))) or None


def _runbook(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and _URL.match(value.strip()):
        return value.strip()
    raise ContactsError(f"{where}: {value!r} is not a runbook link; give an http(s):// URL")


def _contact(value: Any, where: str) -> Contact:
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"mention", "runbook"})
        if unknown:
            raise ContactsError(f"{where}: unknown key(s) {unknown}; an entry has 'mention' and/or 'runbook'")
        return Contact(_mentions(value.get("mention"), f"{where}.mention"),
                       _runbook(value.get("runbook"), f"{where}.runbook"))
    return Contact(_mentions(value, where))


def parse_contacts(raw: Any, source: str) -> Contacts:
    """The mapping from its JSON form (a dict, or JSON text); :class:`ContactsError` names
    ``source``, the entry and the fix when it breaks a rule."""
    import json

    if raw is None or raw == "" or raw == {}:
        return Contacts(source=source)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as e:
            raise ContactsError(f"{source}: not JSON ({e}); e.g. {{\"owners\": {{\"data-platform\": \"S0123ABCD\"}}}}") from None
    if not isinstance(raw, Mapping):
        raise ContactsError(f"{source}: must be a JSON object with 'owners', 'dags' and/or 'default'")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ContactsError(f"{source}: unknown key(s) {unknown}; expected 'owners', 'dags' and/or 'default'")
    sections: dict[str, dict[str, Contact]] = {}
    for name in ("owners", "dags"):
        entries = raw.get(name) or {}
        if not isinstance(entries, Mapping):
            raise ContactsError(f"{source}.{name}: must be an object of name → mention or {{mention, runbook}}")
        sections[name] = {str(k): _contact(v, f"{source}.{name}.{k}") for k, v in entries.items()}
    return Contacts(owners=sections["owners"], dags=sections["dags"],
                    default=_contact(raw.get("default"), f"{source}.default"), source=source)


def owner_names(owner: str | Iterable[str] | None) -> list[str]:
    """``"alice, bob"`` → ``["alice", "bob"]`` (Airflow joins several owners with commas)."""
    if owner is None:
        return []
    parts = owner.split(",") if isinstance(owner, str) else [str(o) for o in owner]
    return [p.strip() for p in parts if p.strip() and p.strip().lower() != "airflow"]


def runbook_in_doc(doc_md: str | None) -> str | None:
    """A runbook link in a DAG's ``doc_md``: ``[Runbook](https://…)`` (or a link whose
    address says runbook), or a line ``Runbook: https://…``."""
    if not doc_md:
        return None
    for label, url in _MD_LINK.findall(doc_md):
        if "runbook" in label.lower() or "runbook" in url.lower():
            return url
    found = _BARE_LINK.search(doc_md)
    return found.group(1) if found else None


def resolve(contacts: Contacts, *, dag_id: str, owners: Iterable[str] = (), mention_override: str | None = None,
            runbook_override: str | None = None, param_runbook: Any = None,
            doc_md: str | None = None) -> Contact:
    """Who to ping and the runbook for a failure of ``dag_id`` owned by ``owners``.

    :param mention_override: the notifier's own ``mention`` (raw, validated here).
    :param runbook_override: the notifier's own ``runbook``.
    :param param_runbook: the DAG's ``runbook`` param.
    :param doc_md: the DAG's documentation.
    """
    dag = contacts.dags.get(dag_id, Contact())
    by_owner = [c for c in (contacts.owner(o) for o in owners) if c is not None]
    mentions = [m for m in (c.mention for c in by_owner) if m]
    who = (_mentions(mention_override, "the notifier's mention") or dag.mention
           or (" ".join(dict.fromkeys(mentions)) if mentions else None) or contacts.default.mention)
    runbook = (_runbook(runbook_override, "the notifier's runbook") or dag.runbook
               or _runbook(param_runbook, f"DAG {dag_id} param 'runbook'") or runbook_in_doc(doc_md)
               or next((c.runbook for c in by_owner if c.runbook), None) or contacts.default.runbook)
    return Contact(who, runbook)
