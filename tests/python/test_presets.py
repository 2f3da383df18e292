"""
Tests of crmflow.presets on the bundled samples.  Expected values are
computed here from the CSV files with the csv module, not with crmflow.
"""

import csv
import datetime
import gzip
import json
import pathlib
import statistics
import zoneinfo

import pytest

import crmflow
from crmflow import presets, templates

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAO_PAULO = zoneinfo.ZoneInfo("America/Sao_Paulo")
OLIST_STATUS = {
    "delivered": "delivered", "shipped": "shipped", "invoiced": "invoiced",
    "processing": "approved", "approved": "approved", "created": "pending_approval",
    "canceled": "canceled", "unavailable": "canceled",
}
LINEAR = ["created", "pending_approval", "approved", "invoiced", "shipped",
          "delivered"]


def _rows(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _local(text):
    """
    Reads an Olist time as Sao Paulo wall clock (earlier instant).
    """
    if not text:
        return None
    naive = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    return naive.replace(tzinfo=SAO_PAULO, fold=0)


def _expected_order_state(row):
    """
    Returns the state an order should end in, or None when its
    timestamps are out of order (left to the deviation checks).
    """
    times = [_local(row[c]) for c in (
        "order_purchase_timestamp", "order_approved_at",
        "order_delivered_carrier_date", "order_delivered_customer_date")]
    present = [t is not None for t in times]
    if present != sorted(present, reverse=True):
        return None
    known = [t for t in times if t is not None]
    if known != sorted(known):
        return None
    # The purchase also submits the order for approval.
    reached = ["pending_approval", "approved", "shipped", "delivered"][
        len(known) - 1]
    target = OLIST_STATUS[row["order_status"]]
    if target == "canceled":
        return target if reached in ("pending_approval", "approved") \
            else reached
    if LINEAR.index(target) >= LINEAR.index(reached):
        return target
    return reached


@pytest.fixture(scope="module")
def olist():
    """
    A memory engine with the bundled Olist orders and reviews imported.
    """
    with crmflow.Engine() as e:
        orders = e.import_preset("olist-orders")
        reviews = e.import_preset("olist-reviews")
        yield e, orders, reviews


class TestRegistry:
    def test_names(self):
        """
        The three presets are listed.
        """
        assert ["olist-orders", "olist-reviews",
                "servicenow-incidents"] == presets.names()

    def test_get_returns_a_copy(self):
        """
        Changing a preset's options does not change the next get().
        """
        presets.get("olist-orders").options["status_map"].clear()

        assert presets.get("olist-orders").options["status_map"]

    def test_unknown(self):
        """
        An unknown preset raises NotFoundError listing the names.
        """
        with pytest.raises(crmflow.NotFoundError, match="olist-orders"):
            presets.get("salesforce")

    @pytest.mark.parametrize("name", presets.names())
    def test_documented(self, name):
        """
        Every preset is in docs/presets.md and has a bundled sample.
        """
        doc = (ROOT / "docs" / "presets.md").read_text(encoding="utf-8")

        assert f"`{name}`" in doc
        assert pathlib.Path(presets.get(name).sample_path()).is_file()
        assert presets.get(name).template in templates.names()


class TestOlistOrders:
    def test_counts(self, olist, bundled):
        """
        Every order is imported once, nothing is rejected.
        """
        e, orders, _ = olist
        rows = _rows(bundled / "olist_orders_sample.csv")

        assert len(rows) == orders.rows == orders.cases == orders.created
        assert [] == orders.rejects
        r = e.report()["kinds"]["sales_order"]
        assert len(rows) == r["transactions"]
        assert len(rows) == sum(r["by_state"].values())

    def test_final_states(self, olist, bundled):
        """
        Orders with consistent timestamps end in their mapped status.
        """
        e, _, _ = olist
        states = dict(zip(*(e.transactions("sales_order")[c]
                            for c in ("id", "state"))))
        expected = {}
        for row in _rows(bundled / "olist_orders_sample.csv"):
            s = _expected_order_state(row)
            if s is not None:
                expected[row["order_id"]] = s

        assert len(expected) > 950
        assert expected == {k: states[k] for k in expected}

    def test_deviations(self, olist, bundled):
        """
        Orders handed to the carrier before approval, or canceled after
        shipping, have deviations.
        """
        e, orders, _ = olist
        expected = set()
        for row in _rows(bundled / "olist_orders_sample.csv"):
            approved = _local(row["order_approved_at"])
            carrier = _local(row["order_delivered_carrier_date"])
            if approved and carrier and carrier < approved:
                expected.add(row["order_id"])
            if row["order_status"] in ("canceled", "unavailable") and (
                    carrier or row["order_delivered_customer_date"]):
                expected.add(row["order_id"])

        ids = set(e.deviations("sales_order")["transaction_id"])

        assert expected <= ids
        assert len(ids) == len(set(e.deviations()["transaction_id"]) & ids)
        assert orders.deviations == len(e.deviations("sales_order"))

    def test_median_time_to_approval(self, olist, bundled):
        """
        The median time waiting for approval matches the CSV.
        """
        e, _, _ = olist
        waits = sorted(
            (_local(r["order_approved_at"])
             - _local(r["order_purchase_timestamp"])).total_seconds()
            for r in _rows(bundled / "olist_orders_sample.csv")
            if r["order_approved_at"]
        )
        n = len(waits)
        low, high = waits[(n - 1) // 2], waits[n // 2]

        t = [x for x in e.report()["kinds"]["sales_order"]["transitions"]
             if x["event"] == "approve"]

        assert 1 == len(t)
        assert n == t[0]["count"]
        assert low - 1 <= t[0]["median_seconds"] <= high + 1
        assert statistics.median(waits) > 0

    def test_estimated_delivery(self, olist, bundled):
        """
        The estimate is a timestamp attribute (Sao Paulo midnight).
        """
        e, _, _ = olist
        row = _rows(bundled / "olist_orders_sample.csv")[0]

        t = e.get(row["order_id"])

        assert _local(row["order_estimated_delivery_date"]) == (
            t.attributes["estimated_delivery"])
        assert row["customer_id"] == t.customer_id


class TestOlistReviews:
    def test_every_review_with_parent_customer(self, olist, bundled):
        """
        Each review becomes feedback linked to its order, with the
        order's customer and the score as an integer.
        """
        e, _, reviews = olist
        rows = _rows(bundled / "olist_reviews_sample.csv")
        customers = {r["order_id"]: r["customer_id"]
                     for r in _rows(bundled / "olist_orders_sample.csv")}

        assert len(rows) == reviews.created
        assert [] == reviews.rejects
        for row in rows[:50]:
            t = e.get(f"{row['review_id']}:{row['order_id']}")
            assert row["order_id"] == t.parent_id
            assert customers[row["order_id"]] == t.customer_id
            assert int(row["review_score"]) == t.attributes["score"]
            assert "received" == t.state

    def test_multiline_message_kept(self, olist, bundled):
        """
        A comment with line breaks is kept byte for byte.
        """
        e, _, _ = olist
        row = next(r for r in _rows(bundled / "olist_reviews_sample.csv")
                   if "\n" in r["review_comment_message"])

        t = e.get(f"{row['review_id']}:{row['order_id']}")

        assert row["review_comment_message"] == t.attributes["message"]

    def test_repeated_review_ids(self, olist, bundled):
        """
        The case id joins review and order, so repeated review ids are
        separate feedback.
        """
        e, _, _ = olist
        rows = _rows(bundled / "olist_reviews_sample.csv")

        assert len(rows) == len(e.transactions("feedback"))


class TestServiceNow:
    STATUS = presets.get("servicenow-incidents").options["status_map"]

    @pytest.fixture(scope="class")
    def imported(self):
        with crmflow.Engine() as e:
            yield e, e.import_preset("servicenow-incidents")

    def _expected(self, path):
        """
        Replays the statuses by hand over the template's edges.
        """
        edges = set()
        for t in templates.definition("service_request")["transitions"]:
            for s in [t["from"]] if isinstance(t["from"], str) else t["from"]:
                edges.add((s, t["to"]))
        cases = {}
        for i, row in enumerate(_rows(path)):
            at = datetime.datetime.strptime(row["sys_updated_at"],
                                            "%d/%m/%Y %H:%M")
            cases.setdefault(row["number"], []).append(
                (at, i, self.STATUS[row["incident_state"]]))
        final, deviating = {}, set()
        for number, events in cases.items():
            events.sort()
            state = "submitted"
            for _, _, target in events:
                if target == state:
                    continue
                if (state, target) in edges:
                    state = target
                else:
                    deviating.add(number)
            final[number] = state
        return final, deviating

    def test_states_and_deviations(self, imported, bundled):
        """
        Final states and deviating incidents match a hand replay.
        """
        e, summary = imported
        final, deviating = self._expected(
            bundled / "servicenow_incidents_sample.csv.gz")

        states = dict(zip(*(e.transactions("service_request")[c]
                            for c in ("id", "state"))))

        assert 1500 == summary.cases
        assert [] == summary.rejects
        assert final == states
        assert deviating == set(e.deviations()["transaction_id"])

    def test_payload_and_attributes(self, imported, bundled):
        """
        Payload carries routing fields; attributes come from the first
        row; actors are sys_updated_by.
        """
        e, _ = imported
        first = _rows(bundled / "servicenow_incidents_sample.csv.gz")[0]

        t = e.get(first["number"])
        h = e.history(first["number"])

        assert first["priority"] == t.attributes["priority"]
        assert first["contact_type"] == t.attributes["channel"]
        assert first["caller_id"] == t.attributes["caller"]
        assert first["sys_updated_by"] == h["actor"][0]
        payload = json.loads(h["payload"].iloc[-1])
        assert {"assignment_group", "assigned_to", "priority",
                "reassignment_count", "made_sla"} == set(payload)

    def test_reimport_skips(self, imported):
        """
        Importing the sample again adds nothing.
        """
        e, _ = imported
        n = len(e.history())

        again = e.import_preset("servicenow-incidents")

        assert 0 == again.created + again.events_applied
        assert n == len(e.history())
