"""
Tests of crmflow.customers and the bulk paths of the engine: identity
normalisation, name similarity, refused imports that write nothing,
duplicates, merge and undo, the 360 view and Olist persons.
"""

import collections
import csv
import decimal
import sqlite3

import numpy as np
import pandas as pd
import pytest

import crmflow
from crmflow import customers as cu

from conftest import utc


@pytest.fixture
def crm(db_path, clock):
    """
    A file-backed engine with the sales_order, feedback and complaint
    templates.
    """
    with crmflow.Engine(db_path, clock=clock) as e:
        for t in ("sales_order", "feedback", "complaint"):
            e.register(t)
        yield e


def _count(path, table):
    """
    Returns the number of rows of ``table``.
    """
    db = sqlite3.connect(path)
    n = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    db.close()
    return n


class TestNormalisation:
    def test_email(self):
        """
        E-mails are trimmed and lower-cased; dots and tags are kept.
        """
        assert "ana.silva+crm@gmail.com" == cu.normalize_email(
            "  Ana.Silva+CRM@GMail.com "
        )
        with pytest.raises(crmflow.InvalidArgumentError) as info:
            cu.normalize_email("ana@localhost")
        assert 'invalid email "ana@localhost"' in str(info.value)

    def test_phone(self):
        """
        Phones become + and digits; national numbers take the default
        country and lose their trunk 0.
        """
        assert "+49301234567" == cu.normalize_phone("+49 (30) 123-4567")
        assert "+49301234567" == cu.normalize_phone("0049 30 1234567")
        assert "+49301234567" == cu.normalize_phone("030 1234567", "49")
        with pytest.raises(crmflow.InvalidArgumentError) as info:
            cu.normalize_phone("030 1234567")
        assert "no country code" in str(info.value)
        with pytest.raises(crmflow.InvalidArgumentError):
            cu.normalize_phone("+49 call me")

    def test_name_similarity(self):
        """
        Accents and word order do not matter; CJK names compare
        character by character (2 of 3 equal: 2*2/6).
        """
        assert "jose alvarez" == cu.fold_name("José  Álvarez!")
        assert 1.0 == cu.name_similarity("José Álvarez", "ALVAREZ, Jose")
        assert 1.0 == cu.name_similarity("王小明", "王 小明")
        similar = cu.name_similarity("王小明", "王晓明")
        assert pytest.approx(4 / 6) == similar
        assert 0.0 == cu.name_similarity("", "Ana")


class TestImportCustomers:
    def test_import_with_identities(self, crm):
        """
        Customers and one identity per channel value are written.
        """
        frame = pd.DataFrame(
            {
                "id": ["C-1", "C-2"],
                "name": ["Ana", "Bo"],
                "email": [" Ana@Example.com", None],
                "phone": ["030 1234567", "+33 1 23 45 67 89"],
                "crm_id": ["A1", "B2"],
                "tier": ["gold", "silver"],
            }
        )

        n = crm.import_customers(
            frame,
            source_id="crm_id",
            source="legacy",
            attributes=["tier"],
            default_country="49",
        )
        got = crm.customers()
        db = sqlite3.connect(crm.path)
        ids = db.execute(
            "SELECT customer_id, kind, normalized, source FROM identities "
            "ORDER BY customer_id, kind"
        ).fetchall()
        db.close()

        assert 2 == n
        assert [{"tier": "gold"}, {"tier": "silver"}] == list(
            got["attributes"]
        )
        assert [
            ("C-1", "email", "ana@example.com", "legacy"),
            ("C-1", "phone", "+49301234567", "legacy"),
            ("C-1", "source", "A1", "legacy"),
            ("C-2", "phone", "+33123456789", "legacy"),
            ("C-2", "source", "B2", "legacy"),
        ] == ids

    @pytest.mark.parametrize(
        "frame, message",
        [
            (
                pd.DataFrame({"id": ["C-1"], "nmae": ["Ana"]}),
                "unknown column 'nmae'",
            ),
            (
                pd.DataFrame({"id": ["C-1", 7]}),
                'column "id" row 1: expected text (got int)',
            ),
            (
                pd.DataFrame({"id": ["C-1", "C-1"]}),
                'rows 0 and 1: id "C-1" given twice',
            ),
            (
                pd.DataFrame({"id": ["C-1", "C-2"], "email": ["a@b.io", "x"]}),
                'column "email" row 1: invalid email "x"',
            ),
        ],
    )
    def test_bad_input_refused_whole(self, crm, frame, message):
        """
        Bad frames are refused with a message naming column and row, and
        nothing is imported.
        """
        with pytest.raises(crmflow.InvalidArgumentError) as info:
            crm.import_customers(frame)

        assert message in str(info.value)
        assert 0 == _count(crm.path, "customers")
        assert 0 == _count(crm.path, "identities")

    def test_existing_id_refused_whole(self, crm):
        """
        Importing a frame whose last row exists already writes nothing.
        """
        crm.import_customers(pd.DataFrame({"id": ["C-2"]}))

        with pytest.raises(crmflow.InvalidArgumentError) as info:
            crm.import_customers(pd.DataFrame({"id": ["C-1", "C-2"]}))

        assert 'row 1: id "C-2": customer already exists' in str(info.value)
        assert 1 == _count(crm.path, "customers")


class TestCreateMany:
    def test_typed_bulk_create(self, crm):
        """
        One transaction per row with typed attributes and times.
        """
        frame = pd.DataFrame(
            {
                "id": ["SO-1", "SO-2"],
                "customer_id": ["C-1", None],
                "amount": [decimal.Decimal("10.50"), "3"],
                "channel": ["web", None],
                "created": pd.to_datetime(
                    ["2026-01-01 10:00", "2026-01-02 11:30"]
                ).tz_localize("UTC"),
            }
        )

        n = crm.create_many(frame, kind="sales_order", time="created")
        t1, t2 = crm.get("SO-1"), crm.get("SO-2")

        assert 2 == n
        assert decimal.Decimal("10.50") == t1.attributes["amount"]
        assert decimal.Decimal("3") == t2.attributes["amount"]
        assert "C-1" == t1.customer_id
        assert t2.customer_id is None
        assert utc(2026, 1, 2, 11, 30) == t2.created_at
        assert "created" == t1.state

    @pytest.mark.parametrize(
        "column, values, message",
        [
            ("amount", [decimal.Decimal("1"), 2.5], 'column "amount" row 1'),
            ("channel", ["web", 3], 'column "channel" row 1'),
            ("colour", ["red", "blue"], 'column "colour": not an attribute'),
        ],
    )
    def test_wrong_types_refused(self, crm, column, values, message):
        """
        Floats for money, numbers for text and undeclared columns are
        refused before anything is written.
        """
        frame = pd.DataFrame({"id": ["SO-1", "SO-2"], column: values})

        with pytest.raises(crmflow.InvalidArgumentError) as info:
            crm.create_many(frame, kind="sales_order")

        assert message in str(info.value)
        assert 0 == len(crm.transactions())

    def test_taken_id_rolls_back_everything(self, crm):
        """
        A taken id in the last row leaves none of the rows behind.
        """
        crm.create("sales_order", "SO-3")
        frame = pd.DataFrame({"id": ["SO-1", "SO-2", "SO-3"]})

        with pytest.raises(crmflow.AlreadyExistsError) as info:
            crm.create_many(frame, kind="sales_order", customer=None)

        assert 'row 2 (id "SO-3")' in str(info.value)
        assert ["SO-3"] == crm.transactions()["id"].tolist()
        assert 1 == len(crm.history())


@pytest.fixture
def people(crm):
    """
    Three customers: C-1 and C-2 share an e-mail (different case), C-3
    has an accented variant of C-1's name; C-2 has two orders and a
    complaint, C-1 one order.
    """
    crm.import_customers(
        pd.DataFrame(
            {
                "id": ["C-1", "C-2", "C-3"],
                "name": ["José Álvarez", "J. Alvarez", "Jose Alvarez"],
                "email": ["jose@example.com", "JOSE@example.com", None],
            }
        )
    )
    crm.create("sales_order", "SO-1", customer="C-1",
               attributes={"amount": decimal.Decimal("10.00")})
    crm.create("sales_order", "SO-2", customer="C-2",
               attributes={"amount": decimal.Decimal("5.25")})
    crm.create("sales_order", "SO-3", customer="C-2",
               attributes={"amount": decimal.Decimal("100.00")})
    crm.fire("SO-3", "cancel")
    crm.create("complaint", "CP-1", customer="C-2")
    return crm


class TestDuplicatesAndMerge:
    def test_find_duplicates(self, people):
        """
        The shared e-mail and the accent-folded name are found.
        """
        pairs = cu.find_duplicates(people)

        got = list(zip(pairs["customer_a"], pairs["customer_b"],
                       pairs["reasons"], pairs["score"]))
        assert [
            ("C-1", "C-2", "email", 1.0),
            ("C-1", "C-3", "name", 1.0),
        ] == got

    @pytest.mark.parametrize("names", [[], ["Ana Souza", "Bruno Lima"]])
    def test_no_pair_gives_an_empty_frame(self, crm, names):
        """
        With no customers, or none alike, the result is empty, not an
        error.
        """
        if names:
            crm.import_customers(pd.DataFrame({
                "id": [f"N-{i}" for i in range(len(names))],
                "name": names,
                "email": [f"n{i}@example.com" for i in range(len(names))],
            }))

        pairs = cu.find_duplicates(crm)

        assert 0 == len(pairs)
        assert {"customer_a", "customer_b", "reasons", "score"} <= set(
            pairs.columns)

    def test_merge_keeps_history_and_undo_restores(self, people):
        """
        A merge re-points transactions and identities, keeps every
        history row and is recorded; undo restores the links exactly.
        """
        before = people.history()
        links = people.transactions()[["id", "customer_id"]]

        merge_id = cu.merge(people, "C-1", "C-2", actor="ana")
        merged_view = cu.customer_360(people, "C-1")
        after_merge = people.transactions()
        db = sqlite3.connect(people.path)
        record = db.execute(
            "SELECT survivor, merged, actor, undone_at FROM merges"
        ).fetchone()
        db.close()
        cu.undo(people, merge_id)
        restored = people.transactions()[["id", "customer_id"]]

        assert ("C-1", "C-2", "ana", None) == record
        assert {"C-1"} == set(after_merge["customer_id"])
        assert ["SO-1", "SO-2", "SO-3"] == merged_view.orders["id"].tolist()
        pd.testing.assert_frame_equal(before, people.history())
        pd.testing.assert_frame_equal(links, restored)
        assert people.customers()["merged_into"].isna().all()
        with pytest.raises(crmflow.InvalidArgumentError) as info:
            cu.undo(people, merge_id)
        assert f"merge {merge_id} was undone" in str(info.value)

    def test_merge_refuses_merged_customer(self, people):
        """
        A customer merged once cannot be merged again.
        """
        cu.merge(people, "C-1", "C-2", actor="ana")

        with pytest.raises(crmflow.InvalidArgumentError) as info:
            cu.merge(people, "C-3", "C-2", actor="ana")

        assert 'customer "C-2" was merged into "C-1"' in str(info.value)

    def test_engine_can_fire_after_merge(self, people):
        """
        The engine cached SO-2 before the merge; it sees the new customer.
        """
        cu.merge(people, "C-1", "C-2", actor="ana")

        people.fire("SO-2", "submit")

        assert "C-1" == people.get("SO-2").customer_id


class TestCustomer360:
    def test_view(self, people, clock):
        """
        Orders, complaints, lifetime value without the canceled order,
        open items and the latest feedback score.
        """
        people.create("feedback", "FB-1", customer="C-2",
                      attributes={"score": 2})
        clock.advance(days=1)
        people.create("feedback", "FB-2", customer="C-2",
                      attributes={"score": 5})

        view = cu.customer_360(people, "C-2")

        assert ["SO-2", "SO-3"] == view.orders["id"].tolist()
        assert ["CP-1"] == view.complaints["id"].tolist()
        assert decimal.Decimal("5.25") == view.lifetime_value
        assert ["CP-1", "FB-1", "SO-2", "FB-2"] == view.open_items[
            "id"
        ].tolist()
        assert 5 == view.latest_satisfaction
        assert ["jose@example.com"] == view.identities["normalized"].tolist()


class TestOlistPersons:
    def test_persons_and_repeat_customers(self, crm, shared_data):
        """
        Per-order customers grouped by customer_unique_id (a source
        identity) and merged give one view per person; repeat customers
        match the counts computed from the CSVs.
        """
        folder = shared_data / "olist_ecommerce_2016_2017"
        with open(folder / "olist_customers_dataset.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        with open(folder / "olist_orders_dataset.csv", newline="") as f:
            orders = list(csv.DictReader(f))
        person = {r["customer_id"]: r["customer_unique_id"] for r in rows}
        per_person = collections.Counter(person[o["customer_id"]]
                                         for o in orders)
        expected_repeat = sorted(
            (p, n) for p, n in per_person.items() if n >= 2
        )
        frame = pd.DataFrame(rows).rename(columns={"customer_id": "id"})

        crm.import_customers(
            frame[["id", "customer_unique_id"]],
            name=None, email=None, phone=None,
            source_id="customer_unique_id", source="olist",
        )
        crm.import_preset("olist-orders", folder / "olist_orders_dataset.csv")
        pairs = cu.find_duplicates(crm)
        source_pairs = pairs[pairs["reasons"] == "source"]
        groups = collections.defaultdict(set)
        for a, b in zip(source_pairs["customer_a"],
                        source_pairs["customer_b"]):
            groups[person[a]].update((a, b))
        for members in groups.values():
            first, *rest = sorted(members)
            for other in rest:
                cu.merge(crm, first, other, actor="test")
        repeat = cu.repeat_customers(crm)
        got = sorted(
            (person[c], int(n))
            for c, n in zip(repeat["customer_id"], repeat["count"])
        )
        top_person, top_n = max(per_person.items(), key=lambda kv: kv[1])
        top_customer = min(c for c, p in person.items() if p == top_person)
        view = cu.customer_360(crm, top_customer)
        expected_orders = sorted(
            o["order_id"] for o in orders
            if person[o["customer_id"]] == top_person
        )

        assert expected_repeat == got
        assert expected_orders == sorted(view.orders["id"])
        assert top_n == len(view.orders)
        assert np.int64 == repeat["count"].dtype
