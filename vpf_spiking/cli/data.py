"""``vpf data check``: find, read and verify the MNIST and Fashion-MNIST files."""

from __future__ import annotations

from .common import Parser, formatter


def add_parser(subparsers):
    p = subparsers.add_parser("data", help="check the MNIST / Fashion-MNIST files",
                              description="Data set utilities.", formatter_class=formatter)
    sub = p.add_subparsers(dest="data_command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    c = sub.add_parser("check", help="find, read and verify the data files",
                       description="Find the MNIST and Fashion-MNIST files (--data-dir, else $VPF_DATA_DIR, else the "
                                   "data module's default places), read them and verify their checksums.",
                       formatter_class=formatter)
    c.add_argument("--data-dir", metavar="DIR", help="folder holding mnist/ and fashion-mnist/")
    c.set_defaults(func=run_check)
    return p


def run_check(args):
    from ..data import check_data
    from ..protocols.inputs import default_data_dir

    table = check_data(data_dir=default_data_dir(args.data_dir))
    for _, r in table.iterrows():
        where = r["path"] if r["status"] == "ok" else r["detail"]
        print(f"{r['dataset']:<14} {r['split']:<5} {r['kind']:<6} {r['status']:<7} {where}")
    bad = table[table["status"] != "ok"]
    if len(bad) == 0:
        print(f"all {len(table)} files found and verified")
        return 0
    print(f"{len(bad)} of {len(table)} files missing or bad (see 'vpf data check --help' for where files are looked up)")
    return 1
