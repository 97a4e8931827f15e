"""``safeload gate run``: the quality gate outside Airflow.

    safeload gate run --suite SUITE.json --conn URI --table T [--where SQL] [--engine sql|gx] [--json]

Exit codes: 0 when no critical check failed, 1 when one did, 2 on a usage error (bad
arguments, a malformed suite, a missing table or a broken ``--where``) or when the
database cannot be reached. Errors are one line on stderr, without a traceback.

``python -m safeload.quality.cli gate run ...`` runs the same command on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors: exit 2 with a short message
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``run`` command to the ``gate`` command's subparsers.

    :param subparsers: what ``add_subparsers()`` of the ``gate`` parser returned
    :returns: the ``run`` parser
    """
    run_p = subparsers.add_parser(
        "run", help="run an expectation suite on a table",
        description="Run a Great Expectations suite on a PostgreSQL table (or a partition of it). Exit 0 when "
                    "no critical check failed, 1 when one did, 2 on a usage or connection error.")
    run_p.add_argument("--suite", required=True, action="append",
                       help="a GX suite JSON file (what ExpectationSuite.to_json_dict() writes); repeatable")
    run_p.add_argument("--contract", help="a contract YAML whose column rules are checked too")
    run_p.add_argument("--conn", required=True, help="PostgreSQL URI of the warehouse, e.g. postgresql://user@host/db")
    run_p.add_argument("--table", required=True, help="the table to check, schema.table")
    run_p.add_argument("--where", help="a SQL filter selecting the partition, e.g. \"order_date = '2024-05-01'\"")
    run_p.add_argument("--engine", choices=["sql", "gx"], default="sql",
                       help="sql: one aggregate scan, other types by GX (default); gx: Great Expectations for all")
    run_p.add_argument("--json", action="store_true", help="print the results as JSON")
    run_p.add_argument("--limit", type=int, default=20, help="failed checks listed in the text report (default 20)")
    run_p.set_defaults(func=run)
    return run_p


def build_parser() -> argparse.ArgumentParser:
    """A parser with just ``gate run`` (the ``safeload`` command adds it to its own)."""
    parser = _Parser(prog="safeload", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    gate = sub.add_parser("gate", help="quality gate commands")
    gsub = gate.add_subparsers(dest="action", required=True, parser_class=_Parser)
    register(gsub)
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Run ``gate run`` with parsed arguments; return the exit code."""
    from safeload.errors import SafeloadError
    from safeload.identifiers import IdentifierError
    from safeload.quality.gate import run_gate
    from safeload.quality.suite import build_suite, coerce_suite, parse_suite

    try:
        suites = [coerce_suite(p) for p in args.suite]
        if len(suites) > 1:  # several files: one suite, in the order given
            suites = [parse_suite({"name": suites[0].name,
                                   "expectations": [e for s in suites for e in s.expectations]},
                                  source=" + ".join(s.source for s in suites))]
        suite = build_suite(suites[0], getattr(args, "contract", None)) if getattr(args, "contract", None) \
            else suites[0]
        result = run_gate(args.conn, table=args.table, suite=suite, where=args.where, engine=args.engine)
    except (SafeloadError, IdentifierError) as e:
        print(f"safeload gate run: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001  a database error mid-run: one line, not a traceback
        print(f"safeload gate run: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.summary(limit=max(1, args.limit)))
    return EXIT_OK if result.success else EXIT_FAILED


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
