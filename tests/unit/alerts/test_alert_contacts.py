"""Who to ping and the runbook: the mapping's rules, its errors, and which source wins."""

from __future__ import annotations

import pytest
from safeload.alerts.contacts import (
    Contact,
    ContactsError,
    mention,
    owner_names,
    parse_contacts,
    resolve,
    runbook_in_doc,
)

MAPPING = {
    "owners": {"data-platform": "S0123ABCD", "alice": {"mention": "U024BE7LH", "runbook": "https://wiki/alice"},
               "bob": ["W0BOBBOB1", "@here"]},
    "dags": {"orders_daily": {"mention": "<!subteam^S0999ZZZZ|@orders-oncall>",
                              "runbook": "https://wiki/runbooks/orders"}},
    "default": {"mention": "S0DEFAULT1", "runbook": "https://wiki/runbooks"},
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("U024BE7LH", "<@U024BE7LH>", id="member-id"),
        pytest.param("W024BE7LH", "<@W024BE7LH>", id="enterprise-member-id"),
        pytest.param("S0123ABCD", "<!subteam^S0123ABCD>", id="group-id"),
        pytest.param(" <@U024BE7LH> ", "<@U024BE7LH>", id="syntax"),
        pytest.param("<!subteam^S0123ABCD|@oncall>", "<!subteam^S0123ABCD|@oncall>", id="group-syntax"),
        pytest.param("@here", "<!here>", id="here"),
        pytest.param("channel", "<!channel>", id="channel"),
    ],
)
def test_mentions_in_slack_syntax(value, expected):
    assert mention(value, "x") == expected


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        pytest.param({"owners": {"alice": "@alice"}}, r"owners\.alice: '@alice' is not a Slack mention; use a "
                     "member ID", id="display-name"),
        pytest.param({"owners": {"alice": {"mention": "U024BE7LH", "email": "a@x"}}},
                     r"owners\.alice: unknown key\(s\) \['email'\]", id="unknown-entry-key"),
        pytest.param({"dags": {"d": {"runbook": "wiki/page"}}}, r"dags\.d\.runbook: 'wiki/page' is not a runbook "
                     r"link; give an http\(s\):// URL", id="runbook-not-url"),
        pytest.param({"owner": {}}, r"unknown key\(s\) \['owner'\]; expected 'owners', 'dags' and/or 'default'",
                     id="misspelt-section"),
        pytest.param("{owners: x}", r"not JSON .*; e\.g\.", id="not-json"),
        pytest.param({"owners": ["alice"]}, r"owners: must be an object", id="owners-not-object"),
        pytest.param({"owners": {"bob": ["U024BE7LH", "bob"]}}, r"owners\.bob\[1\]: 'bob'", id="list-item"),
    ],
)
def test_a_broken_mapping_says_where_what_and_the_fix(raw, match):
    with pytest.raises(ContactsError, match=r"^\[safeload\] alert_contacts"):
        parse_contacts(raw, "[safeload] alert_contacts")
    with pytest.raises(ContactsError, match=match):
        parse_contacts(raw, "[safeload] alert_contacts")


def test_owner_resolves_to_its_mention_and_runbook():
    contacts = parse_contacts(MAPPING, "config")
    assert resolve(contacts, dag_id="d", owners=["alice"]) == Contact("<@U024BE7LH>", "https://wiki/alice")
    assert resolve(contacts, dag_id="d", owners=["Data-Platform"]).mention == "<!subteam^S0123ABCD>"
    both = resolve(contacts, dag_id="d", owners=owner_names("alice, bob"))
    assert both.mention == "<@U024BE7LH> <@W0BOBBOB1> <!here>"


def test_the_dag_entry_overrides_the_owner_and_the_notifier_overrides_both():
    contacts = parse_contacts(MAPPING, "config")
    dag = resolve(contacts, dag_id="orders_daily", owners=["alice"])
    assert dag == Contact("<!subteam^S0999ZZZZ|@orders-oncall>", "https://wiki/runbooks/orders")
    mine = resolve(contacts, dag_id="orders_daily", owners=["alice"], mention_override="U0ONCALL1",
                   runbook_override="https://wiki/mine")
    assert mine == Contact("<@U0ONCALL1>", "https://wiki/mine")


def test_runbook_from_a_dag_param_then_the_doc_then_the_owner_then_the_default():
    contacts = parse_contacts({k: v for k, v in MAPPING.items() if k != "dags"}, "config")
    doc = "Loads orders.\n\n[Runbook](https://wiki/from-doc) · [Source](https://git/x)"
    assert resolve(contacts, dag_id="d", owners=["alice"], param_runbook="https://wiki/param",
                   doc_md=doc).runbook == "https://wiki/param"
    assert resolve(contacts, dag_id="d", owners=["alice"], doc_md=doc).runbook == "https://wiki/from-doc"
    assert resolve(contacts, dag_id="d", owners=["alice"]).runbook == "https://wiki/alice"
    assert resolve(contacts, dag_id="d", owners=["nobody"]) == Contact("<!subteam^S0DEFAULT1>", "https://wiki/runbooks")


def test_no_mapping_means_no_mention():
    assert resolve(parse_contacts(None, "x"), dag_id="d", owners=["alice"]) == Contact(None, None)


def test_runbook_links_in_doc_md():
    assert runbook_in_doc("See [the on-call guide](https://wiki/runbooks/orders).") == "https://wiki/runbooks/orders"
    assert runbook_in_doc("Runbook: https://wiki/x\nmore") == "https://wiki/x"
    assert runbook_in_doc("[Docs](https://wiki/docs)") is None
    assert runbook_in_doc(None) is None


def test_owner_names_skip_airflows_default_owner():
    assert owner_names("airflow") == [] and owner_names(" a , b ") == ["a", "b"]


def test_merged_mappings_take_the_later_sources_entries():
    config = parse_contacts({"owners": {"a": "U0AAAAAAA", "b": "U0BBBBBBB"}}, "config")
    extra = parse_contacts({"owners": {"b": "U0CCCCCCC"}}, "extra")
    merged = config.merged(extra)
    assert (merged.owner("a").mention, merged.owner("b").mention) == ("<@U0AAAAAAA>", "<@U0CCCCCCC>")
