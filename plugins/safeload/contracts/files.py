"""Reading a contract file: safeload's own YAML or an ODCS v3 data contract.

The format is told from the content; :mod:`safeload.contracts.model` parses safeload's
format and :mod:`safeload.contracts.odcs` the ODCS one. This module sits above both, so
neither needs the other. Pure Python: no Airflow import.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from safeload.contracts import odcs
from safeload.contracts.model import Contract, parse_contract
from safeload.errors import ContractError


def load_contract(path: str | Path) -> Contract:
    """Read and validate a contract file: safeload's YAML, or an ODCS v3 data contract.

    The format is told from the content: a document with ``apiVersion`` or ``kind`` is
    read as ODCS (:mod:`safeload.contracts.odcs`), anything else as safeload's own
    format. An ODCS file describing several tables takes the one to read after a
    ``#``: ``contracts/shop.odcs.yaml#orders``. What an ODCS contract says that
    safeload does not check is logged as a warning.

    :param path: path to the YAML file (``path#object`` for one object of an ODCS file)
    :raises ContractError: naming the file, the field and the fix, when it is malformed
    """
    p = Path(path)
    object_name = None
    if "#" in str(path) and not p.exists():
        file_part, object_name = str(path).rsplit("#", 1)
        p = Path(file_part)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(f"{p}: contract file not found; check the path (relative paths are "
                            "resolved from the current directory)") from None
    except IsADirectoryError:
        raise ContractError(f"{p}: is a directory, not a contract file; give the path of the contract's YAML file "
                            "(e.g. include/contracts/orders.yaml)") from None
    except PermissionError:
        raise ContractError(f"{p}: cannot be read (permission denied); let the user running safeload read it") from None
    except UnicodeDecodeError as e:
        raise ContractError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ContractError(f"{p}{where}: invalid YAML: {problem}") from None
    if doc is None:
        raise ContractError(f"{p}: the file is empty; a contract is a YAML mapping with 'dataset' and 'columns' "
                            "(or an ODCS v3 document with 'apiVersion' and 'kind')")
    if odcs.is_odcs(doc):
        contract = odcs.parse_odcs(doc, source=str(p), object_name=object_name)
        odcs.report_warnings(contract)
        return contract
    if object_name is not None:
        raise ContractError(f"{p}: '#{object_name}' selects an object of an ODCS contract, but this is a safeload "
                            "contract (no apiVersion/kind); drop the '#...' part")
    return parse_contract(doc, source=str(p))
