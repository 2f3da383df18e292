"""
Import presets: ready-made mappings for public CRM datasets.

A preset names a template, the shape of the export (an event log or a
milestone table) and the column mapping, so that::

    engine.import_preset("olist-orders", "olist_orders_dataset.csv")

imports the file without writing the mapping by hand (``path`` None
imports the sample bundled in ``crmflow/data``).  The mappings are
documented on each preset below and in ``docs/presets.md``.

``olist-orders``
    Olist ``olist_orders_dataset.csv`` (milestone table) to
    ``sales_order``.  Case ``order_id``, customer ``customer_id``, created
    at ``order_purchase_timestamp``, when it is also submitted (an Olist
    order is placed for payment approval at once); ``order_approved_at``
    fires ``approve``, ``order_delivered_carrier_date`` fires
    ``invoice`` then ``ship`` (Olist invoices when handing over),
    ``order_delivered_customer_date`` fires ``deliver``.  The final
    ``order_status`` maps delivered, shipped, invoiced and approved to the
    state of that name, created (placed, payment not yet approved) to
    pending_approval, processing to approved and
    canceled and unavailable to canceled; the importer infers the
    missing steps (e.g. an invoiced order without carrier date).
    ``order_estimated_delivery_date`` becomes the timestamp attribute
    ``estimated_delivery``.  Times ``%Y-%m-%d %H:%M:%S``, zone
    ``America/Sao_Paulo`` (the data is Brazilian local time without a
    zone).  Orders canceled after they were shipped have no path to
    ``canceled`` and are recorded as deviations.

``olist-reviews``
    Olist ``olist_order_reviews_dataset.csv`` (milestone table without
    milestones) to ``feedback``.  Case ``review_id:order_id``: twelve
    review ids occur on two orders, so the review id alone is not unique.
    Parent ``order_id``: import the orders first and each feedback
    inherits its order's customer.  Created at ``review_answer_timestamp``
    (when the customer's feedback was received; ``review_creation_date``,
    the midnight the survey was sent, becomes the timestamp attribute
    ``survey_sent``).  Attributes ``score`` (integer, from
    ``review_score``), ``title`` and ``message`` (text, line breaks kept).
    Every review stays ``received``: the data has no later step.

``servicenow-incidents``
    The ServiceNow incident event log (UCI 498) to ``service_request``.
    Case ``number``; the status column ``incident_state`` maps New to
    ``submitted``, Active to ``in_progress``, the four Awaiting states to
    ``waiting_customer``, Resolved to ``resolved`` and Closed to
    ``closed``; repeated states count as unchanged.  Time
    ``sys_updated_at`` (``%d/%m/%Y %H:%M``), read as UTC: the data gives
    no zone.  Actor ``sys_updated_by``; each event's payload carries
    ``assignment_group``, ``assigned_to``, ``priority``,
    ``reassignment_count`` and ``made_sla``.  Attributes ``priority``,
    ``category``, ``channel`` (``contact_type``) and ``caller``
    (``caller_id``).  ``?`` is read as empty.  Incidents reopened after
    closing are recorded as deviations (``closed`` is terminal).

.. versionadded:: 0.1.0
"""

import copy
import dataclasses
import os
from typing import Any, Dict, List

from crmflow._errors import NotFoundError

__all__ = ["Preset", "names", "get"]

_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@dataclasses.dataclass(frozen=True)
class Preset:
    """
    A named import mapping.

    Attributes:
        name: The preset's name.
        kind: The kind it imports into.
        template: The template registered when the kind is absent.
        shape: ``"event_log"`` or ``"milestones"``.
        options: Keyword arguments of ``Engine.import_event_log`` or
            ``Engine.import_milestones`` (without ``kind``).
        sample: File name of the bundled sample in ``crmflow/data``.
        description: One line on the source.
    """

    name: str
    kind: str
    template: str
    shape: str
    options: Dict[str, Any] = dataclasses.field(hash=False)
    sample: str
    description: str

    def sample_path(self) -> str:
        """
        Returns the path of the bundled sample file.
        """
        return os.path.join(_DATA, self.sample)


_OLIST_STATUS = {
    "delivered": "delivered",
    "shipped": "shipped",
    "invoiced": "invoiced",
    "processing": "approved",
    "approved": "approved",
    "created": "pending_approval",
    "canceled": "canceled",
    "unavailable": "canceled",
}

_SERVICENOW_STATUS = {
    "New": "submitted",
    "Active": "in_progress",
    "Awaiting User Info": "waiting_customer",
    "Awaiting Problem": "waiting_customer",
    "Awaiting Vendor": "waiting_customer",
    "Awaiting Evidence": "waiting_customer",
    "Resolved": "resolved",
    "Closed": "closed",
}

_PRESETS = {
    p.name: p
    for p in (
        Preset(
            name="olist-orders",
            kind="sales_order",
            template="sales_order",
            shape="milestones",
            options={
                "case": "order_id",
                "customer": "customer_id",
                "created": "order_purchase_timestamp",
                "milestones": {
                    "order_purchase_timestamp": ["submit"],
                    "order_approved_at": ["approve"],
                    "order_delivered_carrier_date": ["invoice", "ship"],
                    "order_delivered_customer_date": ["deliver"],
                },
                "status": "order_status",
                "status_map": _OLIST_STATUS,
                "attributes": {
                    "order_estimated_delivery_date": (
                        "estimated_delivery",
                        "timestamp",
                    ),
                },
                "time_format": "%Y-%m-%d %H:%M:%S",
                "time_zone": "America/Sao_Paulo",
            },
            sample="olist_orders_sample.csv",
            description="Olist orders (Brazil, 2016-2017), milestone table",
        ),
        Preset(
            name="olist-reviews",
            kind="feedback",
            template="feedback",
            shape="milestones",
            options={
                "case": ["review_id", "order_id"],
                "parent": "order_id",
                "created": "review_answer_timestamp",
                "milestones": {},
                "attributes": {
                    "review_score": ("score", "integer"),
                    "review_comment_title": ("title", "text"),
                    "review_comment_message": ("message", "text"),
                    "review_creation_date": ("survey_sent", "timestamp"),
                },
                "time_format": "%Y-%m-%d %H:%M:%S",
                "time_zone": "America/Sao_Paulo",
            },
            sample="olist_reviews_sample.csv",
            description="Olist order reviews (score and comment)",
        ),
        Preset(
            name="servicenow-incidents",
            kind="service_request",
            template="service_request",
            shape="event_log",
            options={
                "case": "number",
                "activity": "incident_state",
                "status_map": _SERVICENOW_STATUS,
                "time": "sys_updated_at",
                "actor": "sys_updated_by",
                "payload": [
                    "assignment_group",
                    "assigned_to",
                    "priority",
                    "reassignment_count",
                    "made_sla",
                ],
                "attributes": {
                    "priority": ("priority", "text"),
                    "category": ("category", "text"),
                    "contact_type": ("channel", "text"),
                    "caller_id": ("caller", "text"),
                },
                "time_format": "%d/%m/%Y %H:%M",
                "time_zone": "UTC",
                "null_values": ["?"],
            },
            sample="servicenow_incidents_sample.csv.gz",
            description="ServiceNow incident event log (UCI 498), 2016",
        ),
    )
}


def names() -> List[str]:
    """
    Returns the preset names, sorted.
    """
    return sorted(_PRESETS)


def get(name: str) -> Preset:
    """
    Returns preset ``name`` (a copy: changing its options changes no
    other caller's).

    Raises:
        NotFoundError: Unknown name; the message lists the presets.
    """
    preset = _PRESETS.get(name) if isinstance(name, str) else None
    if preset is None:
        shown = name if isinstance(name, str) else type(name).__name__
        message = f'unknown preset "{shown}" (expected {", ".join(names())})'
        raise NotFoundError(message)
    return dataclasses.replace(preset, options=copy.deepcopy(preset.options))
