"""The queue demo of `make run`: every queue gets a request, always the same ones."""

from __future__ import annotations

from crs.demo_data import generate_demo_data
from crs.demo_queues import QUEUES, describe, queue_demo_requests
from services.routing.rules import load_rules
from shared.contract import CrmRequest, EmailRequest
from shared.topics import CRM_REQUESTS


def test_the_default_dataset_gives_a_request_for_every_queue_of_the_routing_rules() -> None:
    requests = queue_demo_requests(generate_demo_data())
    assert set(QUEUES) == set(load_rules().queues)
    assert {request.queue for request in requests} == set(QUEUES)
    waiting_for_approval = {request.queue for request in requests if request.status == "awaiting_approval"}
    assert waiting_for_approval == {"accounts_receivable", "credit_control"}


def test_the_requests_are_the_same_every_time_and_each_has_a_customer_of_its_own() -> None:
    first, again = queue_demo_requests(generate_demo_data()), queue_demo_requests(generate_demo_data())
    assert first == again
    assert len({request.key for request in first}) == len(first)
    crm = [CrmRequest.model_validate(r.value) for r in first if r.topic == CRM_REQUESTS]
    emails = [EmailRequest.model_validate(r.value) for r in first if r.topic != CRM_REQUESTS]
    customers = [case.customer_id for case in crm]
    assert len(set(customers)) == len(customers)
    assert len(emails) == 1


def test_a_tiny_dataset_leaves_out_what_it_has_no_data_for() -> None:
    requests = queue_demo_requests(generate_demo_data(customers=3))
    assert len(requests) < len(queue_demo_requests(generate_demo_data()))
    assert "none for " in describe(requests)  # `make run` says which queues stay empty
