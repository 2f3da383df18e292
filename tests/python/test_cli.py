"""
Tests of the crmflow command line, run in subprocesses and in-process.
"""

import argparse
import json
import os
import subprocess
import sys

import pytest

from crmflow import cli

COMMANDS = ["demo", "import", "fire", "show", "report"]


def run(*args, cwd=None):
    """
    Runs ``python -m crmflow.cli ARGS`` and returns the completed process.
    """
    return subprocess.run(
        [sys.executable, "-m", "crmflow.cli", *args],
        capture_output=True, text=True, cwd=cwd, timeout=300,
        env=dict(os.environ),
    )


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    """
    A database filled by ``crmflow demo``, and the two runs' output.
    """
    path = str(tmp_path_factory.mktemp("cli") / "demo.db")
    first = run("demo", "--db", path)
    second = run("demo", "--db", path)
    return path, first, second


class TestHelp:
    @pytest.mark.parametrize("command", [[]] + [[c] for c in COMMANDS])
    def test_help(self, command):
        """
        --help works on the program and on every command.
        """
        p = run(*command, "--help")

        assert 0 == p.returncode
        assert "usage: crmflow" in p.stdout

    def test_every_option_has_help(self):
        """
        Every option and argument of every command, subcommands included,
        has a help text.
        """
        missing = []

        def walk(parser, path):
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for name, sub in action.choices.items():
                        walk(sub, path + [name])
                elif not action.help:
                    name = "/".join(action.option_strings) or action.dest
                    missing.append(" ".join(path + [name]))

        walk(cli._parser(), ["crmflow"])

        assert [] == missing

    @pytest.mark.parametrize(
        "command, option",
        [("customers", "--duplicates"), ("customers", "--threshold"),
         ("import", "--on-error")],
    )
    def test_option_help_shown(self, command, option):
        """
        COMMAND --help lists the option with a text after it.
        """
        p = run(command, "--help")

        assert 0 == p.returncode
        lines = p.stdout.splitlines()
        at = [i for i, line in enumerate(lines)
              if line.strip().startswith(option)]
        assert 1 == len(at)
        same_line = lines[at[0]].strip().split("  ", 1)[1:]
        next_line = lines[at[0] + 1].strip()
        assert same_line or not next_line.startswith("-")
        assert (same_line or [next_line])[0].strip()


class TestDemo:
    def test_first_run_imports(self, demo_db):
        """
        The first demo run imports the three samples and prints the
        report.
        """
        _, first, _ = demo_db

        assert 0 == first.returncode, first.stderr
        for name in ("olist-orders", "olist-reviews",
                     "servicenow-incidents"):
            assert name + ":" in first.stdout
        assert "1000 created" in first.stdout
        assert "sales_order: 1000 transactions" in first.stdout
        assert "service_request: 1500 transactions" in first.stdout

    def test_second_run_skips(self, demo_db):
        """
        Running the demo again creates nothing and reports skips.
        """
        _, _, second = demo_db

        assert 0 == second.returncode, second.stderr
        assert " 0 created, 0 events" in second.stdout
        for line in second.stdout.splitlines():
            if line.startswith(("olist-orders:", "servicenow-incidents:")):
                assert " 0 skipped" not in line

    def test_second_run_counts(self, demo_db):
        """
        The second run's skipped count is what the first run stored
        (creations, transitions, deviations), not rows; status rows that
        repeat the state store nothing and count as unchanged again; the
        report is the same.
        """
        _, first, second = demo_db

        def counts(out):
            found = {}
            for line in out.splitlines():
                name, sep, rest = line.partition(": ")
                if sep and name in ("olist-orders", "olist-reviews",
                                    "servicenow-incidents"):
                    figures = rest.split(": ", 1)[1]
                    found[name] = {
                        word: int(n) for n, word in
                        (f.split(" ", 1) for f in figures.split(", "))
                    }
            return found

        a, b = counts(first.stdout), counts(second.stdout)
        report_a = first.stdout.split("\n\n", 1)[1]
        report_b = second.stdout.split("\n\n", 1)[1]

        assert 3 == len(a) == len(b)
        for name in a:
            stored = a[name]["created"] + a[name]["events"] \
                + a[name]["deviations"]
            assert stored == b[name]["skipped"], name
            assert a[name]["unchanged"] == b[name]["unchanged"], name
            assert a[name]["rows"] == b[name]["rows"], name
            assert 0 == b[name]["created"] + b[name]["events"] \
                + b[name]["deviations"] + b[name]["inferred"], name
        assert report_a == report_b

    def test_default_path(self, tmp_path):
        """
        Without --db the demo writes crmflow-demo.db in the working
        directory.
        """
        p = run("demo", cwd=str(tmp_path))

        assert 0 == p.returncode, p.stderr
        assert (tmp_path / "crmflow-demo.db").is_file()


class TestCommands:
    def test_report_json_is_strict(self, demo_db):
        """
        report --json prints strict JSON with the three kinds.
        """
        path, _, _ = demo_db

        p = run("report", "--db", path, "--json")

        assert 0 == p.returncode, p.stderr
        report = json.loads(p.stdout, parse_constant=pytest.fail)
        assert {"sales_order", "feedback", "service_request"} == set(
            report["kinds"])

    def test_report_text(self, demo_db):
        """
        The text report shows states, transitions and durations.
        """
        path, _, _ = demo_db

        p = run("report", "--db", path)

        assert 0 == p.returncode
        assert "by state:" in p.stdout
        assert "median" in p.stdout
        assert "deviations" in p.stdout

    def test_fire_and_show(self, tmp_path):
        """
        fire moves a transaction; show prints it in the given zone.
        """
        import crmflow

        path = str(tmp_path / "f.db")
        with crmflow.Engine(path) as e:
            e.register("complaint")
            e.create("complaint", "CP-1", time="2026-03-01T10:00:00Z")

        fired = run("fire", "--db", path, "CP-1", "acknowledge",
                    "--actor", "ann", "--time", "2026-03-01T11:00:00Z",
                    "--payload", '{"note": "called back"}')
        shown = run("show", "--db", path, "CP-1", "--tz", "Asia/Tokyo")

        assert 0 == fired.returncode, fired.stderr
        assert "CP-1: received -> acknowledged" in fired.stdout
        assert 0 == shown.returncode, shown.stderr
        assert "2026-03-01 20:00:00+09:00" in shown.stdout
        assert "acknowledge" in shown.stdout
        assert "called back" in shown.stdout

    def test_import_preset(self, tmp_path, bundled):
        """
        import --preset reads the given file.
        """
        path = str(tmp_path / "i.db")

        p = run("import", "--db", path, "--preset", "olist-orders",
                str(bundled / "olist_orders_sample.csv"))

        assert 0 == p.returncode, p.stderr
        assert "1000 created" in p.stdout

    def test_import_explicit_mapping(self, tmp_path):
        """
        import with --kind/--case/--activity/--time reads an event log.
        """
        log = tmp_path / "log.csv"
        log.write_text("id,act,at\nX-1,Acknowledged,2026-01-01T10:00Z\n",
                       encoding="utf-8")

        p = run("import", "--db", str(tmp_path / "e.db"), "--kind",
                "complaint", "--case", "id", "--activity", "act",
                "--time", "at", "--activity-map",
                '{"Acknowledged": "acknowledge"}', str(log))

        assert 0 == p.returncode, p.stderr
        assert "1 created" in p.stdout

    @pytest.mark.parametrize("on_error", ["collect", "raise"])
    def test_import_on_error(self, tmp_path, on_error):
        """
        --on-error collect leaves out the case with an unusable row and
        imports the others; raise stops and imports nothing.
        """
        import crmflow

        log = tmp_path / "log.csv"
        log.write_text("id,act,at\n"
                       "X-1,acknowledge,2026-01-01T10:00Z\n"
                       "X-1,resolve,not a time\n"
                       "X-2,acknowledge,2026-01-01T10:00Z\n",
                       encoding="utf-8")
        db = tmp_path / "o.db"

        p = run("import", "--db", str(db), "--kind", "complaint",
                "--case", "id", "--activity", "act", "--time", "at",
                "--on-error", on_error, str(log))

        with crmflow.Engine(str(db)) as e:
            ids = list(e.transactions()["id"])
        if on_error == "collect":
            assert 0 == p.returncode, p.stderr
            assert "1 rejected" in p.stdout
            assert "log.csv:3:" in p.stdout
            assert ["X-2"] == ids
        else:
            assert 1 == p.returncode
            assert "log.csv:3:" in p.stderr
            assert [] == ids


    @pytest.mark.parametrize("on_error", ["collect", "raise"])
    def test_preset_import_on_error(self, tmp_path, on_error):
        """
        Presets follow --on-error too: the bundled Olist sample with one
        purchase time spoiled imports 999 orders, or none under raise.
        """
        import crmflow

        sample = os.path.join(os.path.dirname(crmflow.__file__), "data",
                              "olist_orders_sample.csv")
        with open(sample, encoding="utf-8") as f:
            lines = f.read().splitlines(keepends=True)
        header = lines[0].rstrip("\n").split(",")
        col = header.index("order_purchase_timestamp")
        cells = lines[1].rstrip("\n").split(",")
        cells[col] = "someday"
        lines[1] = ",".join(cells) + "\n"
        log = tmp_path / "orders.csv"
        log.write_text("".join(lines), encoding="utf-8")
        db = tmp_path / "o.db"

        p = run("import", "--db", str(db), "--preset", "olist-orders",
                "--on-error", on_error, str(log))

        with crmflow.Engine(str(db)) as e:
            n = len(e.transactions())
        if on_error == "collect":
            assert 0 == p.returncode, p.stderr
            assert "1 rejected" in p.stdout
            assert 999 == n
        else:
            assert 1 == p.returncode
            assert "orders.csv:2:" in p.stderr
            assert 0 == n


class TestErrors:
    @pytest.mark.parametrize(
        "args",
        [
            ["report", "--db", "nothere.db"],
            ["show", "--db", "nothere.db", "X"],
            ["import", "--db", "x.db", "--preset", "nope", "f.csv"],
            ["import", "--db", "x.db", "--preset", "olist-orders",
             "missing.csv"],
            ["fire", "--db", "x.db"],
            ["frobnicate"],
            ["import", "--db", "x.db", "f.csv"],
        ],
    )
    def test_one_line_no_traceback(self, tmp_path, args):
        """
        Errors print one line 'crmflow: error: ...' and exit non-zero.
        """
        p = run(*args, cwd=str(tmp_path))

        assert 0 != p.returncode
        assert "Traceback" not in p.stderr
        lines = p.stderr.strip().splitlines()
        assert 1 == len(lines), p.stderr
        assert lines[0].startswith("crmflow: error: ")

    def test_crmflow_error_in_process(self, tmp_path, capsys):
        """
        A crmflow.Error (unknown transaction) is one line, status 1.
        """
        import crmflow

        path = str(tmp_path / "e.db")
        crmflow.Engine(path).close()

        status = cli.main(["fire", "--db", path, "NOPE", "go"])

        assert 1 == status
        err = capsys.readouterr().err
        assert err.startswith("crmflow: error: ")
        assert "NOPE" in err

    def test_bad_payload(self, tmp_path, capsys):
        """
        --payload that is not JSON is a usage error.
        """
        import crmflow

        path = str(tmp_path / "p.db")
        crmflow.Engine(path).close()

        assert 2 == cli.main(["fire", "--db", path, "X", "go",
                              "--payload", "{bad"])
        assert "--payload" in capsys.readouterr().err


class TestFormatting:
    @pytest.mark.parametrize(
        "seconds, text",
        [(None, "-"), (0, "0s"), (45, "45s"), (725, "12m 5s"),
         (12000, "3h 20m"), (273600, "3d 4h"), (0.075, "0.075s")],
    )
    def test_format_duration(self, seconds, text):
        """
        Durations are shown in short human units.
        """
        assert text == cli.format_duration(seconds)
