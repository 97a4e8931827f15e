"""The ``safeload`` command: the same checks and loads, outside Airflow.

    safeload contract check CONTRACT --source PATH|URL [--storage-options JSON] [--policy P] [--json]
    safeload load --conn URI --table SCHEMA.TABLE --partition VALUE --source PATH|URL|URI [--source-sql SQL] ...
    safeload gate run --suite SUITE.json --conn URI --table T [--where SQL] [--engine sql|gx] [--json]

Exit codes: 0 success, 1 refused (breaking drift, bad data, failed critical check),
2 usage or connection error (or an unreadable input).
"""

from __future__ import annotations

import argparse
import json
import sys

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

_STORAGE_OPTIONS_HELP = ("options of the object store's filesystem, as a JSON object (or @file.json): e.g. "
                         "'{\"endpoint_url\": \"http://minio:9000\"}' for s3fs, '{\"project\": \"my-project\"}' "
                         "for gcsfs, '{\"account_name\": \"acct\"}' for adlfs; credentials are better left to "
                         "the environment (AWS_ACCESS_KEY_ID, ..., GOOGLE_APPLICATION_CREDENTIALS, "
                         "AZURE_STORAGE_CONNECTION_STRING), which the filesystem reads itself")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 on usage errors already; keep the message short
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="safeload", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    contract = sub.add_parser("contract", help="data contract commands")
    csub = contract.add_subparsers(dest="action", required=True, parser_class=_Parser)
    check = csub.add_parser("check", help="hold a source against a contract: its shape and its value rules",
                            description="Exit 0 when the source satisfies the contract (additive drift under "
                                        "'warn' and rules of severity warning included), 1 on breaking drift or a "
                                        "broken value rule, 2 on a usage error or unreadable input. Every rule of "
                                        "the contract is listed, checked or not checked, with its path.")
    check.add_argument("contract", help="the contract: safeload's YAML or an ODCS v3 file "
                                        "(file.odcs.yaml#object for one table of several)")
    check.add_argument("--source", required=True,
                       help="a CSV(.gz), Parquet or JSON lines file (a local path, or an object storage URL: "
                            "s3://bucket/key, gs://, abfs://, file://), or postgresql://.../db?table=schema.table")
    check.add_argument("--storage-options", metavar="JSON|@FILE", help=_STORAGE_OPTIONS_HELP)
    check.add_argument("--format", choices=["csv", "parquet", "jsonl"], help="source format (default: from the name)")
    check.add_argument("--policy", choices=["fail", "warn", "evolve"], help="override the contract's schema_policy")
    check.add_argument("--rules", choices=["fail", "warn"], default="fail",
                       help="what a broken value rule does: fail (exit 1, the default) or warn (reported, exit 0)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=_contract_check)

    load = sub.add_parser("load", help="load one partition (write-audit-publish)",
                          description="Load one partition idempotently into an existing table whose columns match "
                                      "the source's by name. Exit 0 on publish, 1 when the load was refused (bad "
                                      "data over the threshold, contract broken, empty source, a source query "
                                      "that fails), 2 on usage or connection errors (the source database's too).")
    load.add_argument("--conn", required=True, help="PostgreSQL URI of the warehouse, e.g. postgresql://user@host/db")
    load.add_argument("--table", required=True, help="target table, schema.table")
    load.add_argument("--partition", required=True, help="the partition value to replace, e.g. 2024-05-01")
    load.add_argument("--source", help="the file to load (a local path, or an object storage URL: s3://bucket/key, "
                                        "gs://, abfs://, file://; streamed), or the PostgreSQL database a query "
                                        "runs on: postgresql://user@host/db?query=SELECT... (URL-encoded), or with "
                                        "--source-sql")
    load.add_argument("--storage-options", metavar="JSON|@FILE", help=_STORAGE_OPTIONS_HELP)
    load.add_argument("--source-sql", metavar="SQL|@FILE",
                      help="load the result of this query (or of the query in FILE) instead of a file; it runs "
                           "on the postgresql:// --source, else on --conn. Streamed with COPY; result columns "
                           "match the target's by name")
    load.add_argument("--partition-column", help="the partition column (or take it from --contract)")
    load.add_argument("--contract", help="a contract: checked before loading; gives the partition column")
    load.add_argument("--format", choices=["csv", "parquet", "jsonl"], help="source format (default: from the name)")
    load.add_argument("--max-bad-rows", type=int, default=0, help="quarantined rows allowed (default 0)")
    load.add_argument("--max-bad-fraction", type=float, help="quarantined fraction allowed, e.g. 0.001")
    load.add_argument("--allow-empty", action="store_true", help="accept an empty source (replaces with nothing)")
    load.add_argument("--lock-timeout", default="30s", help="bound on lock waits (default 30s)")
    load.add_argument("--publish-strategy", choices=["auto", "swap", "direct", "delete_insert"], default="auto",
                      help="auto (default): swap where the target is natively partitioned and a swap is safe, "
                           "direct into a plain table, else delete_insert; swap: the staged table becomes the "
                           "partition (rows written once; readers wait at most 200 ms per lock attempt); direct: "
                           "DELETE and COPY into the target in one transaction (rows written once, no staging; a helper "
                           "stream's rows pass through an UNLOGGED side table); "
                           "delete_insert: DELETE + INSERT from staging (rows written twice; never blocks readers)")
    load.add_argument("--parallel", type=_streams, default="auto", metavar="N",
                      help="COPY a CSV source in N streams at once (cut at record boundaries), published in one "
                           "transaction; auto (default): 2 for a CSV file of 2 MiB or more, else 1 (docs/decisions/"
                           "042, 046, 047)")
    load.add_argument("--run-key", help="names this load in the history (default: a new random key)")
    load.add_argument("--json", action="store_true", help="print the result as JSON")
    load.set_defaults(func=_load)

    gate = sub.add_parser("gate", help="quality gate commands")
    gsub = gate.add_subparsers(dest="action", required=True, parser_class=_Parser)
    try:
        from safeload.quality.cli import register
    except ImportError:  # pragma: no cover
        register = None
    if register is not None:
        register(gsub)
    return parser


def _contract_check(args) -> int:
    from safeload.contracts.check import check_source
    from safeload.errors import SafeloadError

    conn = None
    try:
        source, table = args.source, None
        if source.startswith(("postgresql://", "postgres://")):
            import psycopg
            from urllib.parse import parse_qs, urlsplit, urlunsplit

            parts = urlsplit(source)
            table = (parse_qs(parts.query).get("table") or [None])[0]
            if not table:
                print("safeload: a postgresql:// source needs ?table=schema.table", file=sys.stderr)
                return EXIT_USAGE
            conn = psycopg.connect(urlunsplit(parts._replace(query="")), autocommit=True)
            source = None
        else:
            source = _stored(source, args.storage_options)
        report = check_source(args.contract, source, fmt=args.format, policy=args.policy, conn=conn, table=table,
                              rule_policy=args.rules)
    except SafeloadError as e:
        print(f"safeload: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # a connection error, an unreadable file: no traceback for the user
        print(f"safeload: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if conn is not None:
            conn.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.summary())
    return EXIT_OK if report.passed else EXIT_REFUSED


def _load(args) -> int:
    import uuid

    import psycopg

    from safeload.errors import ContractError, LoadRefusedError, SafeloadError, SourceError, SourceUnavailableError
    from safeload.loads.loader import PartitionLoader, QuerySource
    from safeload.loads.sources.files import FileSource

    contract = None
    if args.contract:  # imported only when used: a load without one starts sooner (YAML, ODCS, GX names)
        from safeload.contracts.files import load_contract

        try:
            contract = load_contract(args.contract)
        except ContractError as e:
            print(f"safeload: {e}", file=sys.stderr)
            return EXIT_USAGE
    column = args.partition_column or (contract.partition_column if contract else None)
    if not column:
        print("safeload: give --partition-column, or a --contract with target.partition_column", file=sys.stderr)
        return EXIT_USAGE
    try:
        source = _load_source(args)
        if isinstance(source, str):
            source = _stored(source, args.storage_options)
    except (SourceError, OSError) as e:
        print(f"safeload: {e}", file=sys.stderr)
        return EXIT_USAGE
    if source is None:
        print("safeload: give --source (a file, or a postgresql:// database with ?query= or --source-sql) "
              "or --source-sql", file=sys.stderr)
        return EXIT_USAGE
    add = []
    try:
        if contract is not None:
            from safeload.contracts.check import check_source, columns_to_add

            if not isinstance(source, QuerySource):  # a file: an object is then held to the version checked
                report = check_source(contract, source, fmt=args.format)
            else:  # the query's result columns and types, from the source database
                with source:  # read only, and one statement (checked before anything runs it)
                    source.columns()
                    report = check_source(contract, conn=source.connection, query=source.query)
            if not report.passed:
                print(report.summary(), file=sys.stderr)
                return EXIT_REFUSED
            add = columns_to_add(report)
        loader = PartitionLoader(lambda: psycopg.connect(args.conn, application_name="safeload-cli"),
                                 table=args.table, partition_column=column, partition_value=args.partition,
                                 run_key=args.run_key or f"cli/{uuid.uuid4().hex[:12]}",
                                 lock_timeout=args.lock_timeout, max_bad_rows=args.max_bad_rows,
                                 max_bad_fraction=args.max_bad_fraction, allow_empty=args.allow_empty,
                                 add_columns=add, publish_strategy=args.publish_strategy, parallel=args.parallel,
                                 audit={"dag_id": "safeload-cli"})
        result = loader.run(source if isinstance(source, QuerySource) else FileSource(source, args.format))
    except SourceUnavailableError as e:
        print(f"safeload: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (LoadRefusedError, SourceError) as e:
        print(f"safeload: refused: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except SafeloadError as e:
        print(f"safeload: {e}", file=sys.stderr)
        return EXIT_USAGE
    except psycopg.Error as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"safeload: database error: {_scrub_password(message, args.conn, args.source)}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f"published {result.target} partition {result.partition_value}: {result.rows} rows "
              f"({result.rows_quarantined} quarantined, {result.rows_replaced} replaced by {result.published_by}), "
              f"checksum {result.checksum}")
    return EXIT_OK


def _streams(text: str) -> int | str:
    """``--parallel``: a whole number of streams, 1 or more, or ``auto``."""
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of streams (1, 2, ...) nor auto")
    return n


def _load_source(args):
    """The file path, a QuerySource (``--source postgresql://...?query=`` or ``--source-sql``), or None."""
    from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

    from safeload.errors import SourceError
    from safeload.loads.loader import QuerySource

    source, query = args.source, args.source_sql
    if query and query.startswith("@"):
        with open(query[1:], encoding="utf-8") as fh:
            query = fh.read()
    conninfo = None
    if source and source.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(source)
        params = parse_qs(parts.query)
        url_query = (params.get("query") or [None])[0]
        table = (params.get("table") or [None])[0]
        if url_query and query:
            raise SourceError("give the query once: ?query= in --source or --source-sql, not both")
        if table and not (url_query or query):
            from psycopg import sql

            from safeload.identifiers import validate_table_name

            url_query = sql.SQL("select * from {}").format(sql.Identifier(*validate_table_name(table))).as_string()
        query = query or url_query
        if not query:
            raise SourceError("a postgresql:// --source needs a query: ?query=..., ?table=schema.table or --source-sql")
        rest = urlencode({k: v for k, v in params.items() if k not in ("query", "table")}, doseq=True)
        conninfo = urlunsplit(parts._replace(query=rest))
    elif query and source:
        raise SourceError("--source-sql runs a query; --source must then be a postgresql:// URI (or left out to "
                          "query --conn), not a file")
    elif query:
        conninfo = args.conn
    if query is None:
        return source
    return QuerySource.from_conninfo(conninfo, query)


def _stored(source: str, options: str | None):
    """A local path as it is; an object storage URL as a StoredFile with ``--storage-options``."""
    from safeload.errors import SourceError
    from safeload.storage import StoredFile
    from safeload.urls import is_url

    if not is_url(source):
        if options:
            raise SourceError("--storage-options applies to an object storage URL (s3://bucket/key, ...), "
                              f"not to the local file {source}")
        return source
    text = options or "{}"
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as fh:
            text = fh.read()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as e:
        raise SourceError(f"--storage-options is not valid JSON ({e.msg} at character {e.pos}); give a JSON "
                          "object, e.g. '{\"endpoint_url\": \"http://minio:9000\"}'") from None
    if not isinstance(parsed, dict):
        raise SourceError("--storage-options must be a JSON object of the filesystem's options")
    return StoredFile(source, storage_options=parsed)


def _scrub_password(message: str, *uris: str | None) -> str:
    from psycopg.conninfo import conninfo_to_dict

    for uri in uris:
        try:
            password = conninfo_to_dict(uri).get("password") if uri else None
        except Exception:  # noqa: BLE001 - not a connection string (a file path)
            password = None
        if password:
            message = message.replace(str(password), "***")
    return message


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
