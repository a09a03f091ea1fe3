"""Operators' changes in the admin are audited in the same transaction (provider keys, failover order,
prices, API keys, members), never with a secret; the audit log itself is read-only in the admin."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit import services as audit_services
from audit.models import AuditLog
from billing.models import Model, PriceCard
from gateway.models import ProviderKey
from tests.test_admin import PROVIDER_SECRET, changelist, provider_form, route
from workspaces.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_superuser("operator", "operator@example.com", None)


@pytest.fixture
def staff(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def rows(**filters) -> list[AuditLog]:
    return list(AuditLog.objects.filter(**filters).order_by("id"))


def stored_text() -> str:
    return json.dumps(list(AuditLog.objects.values("old", "new")))


def listing_form(*rows_: tuple[ProviderKey, int, bool]) -> dict:
    data = {
        "form-TOTAL_FORMS": str(len(rows_)),
        "form-INITIAL_FORMS": str(len(rows_)),
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for n, (key, priority, enabled) in enumerate(rows_):
        data[f"form-{n}-id"] = str(key.pk)
        data[f"form-{n}-priority"] = str(priority)
        if enabled:
            data[f"form-{n}-enabled"] = "on"
    return data


def test_adding_and_changing_a_provider_key_is_audited_without_the_secret(staff, operator, catalog):
    codex = Model.objects.get(slug="codex-mini")
    assert staff.post(reverse("admin:gateway_providerkey_add"), provider_form(codex)).status_code == 302
    key = ProviderKey.objects.get()
    (added,) = rows(action="provider_key.add")
    assert added.actor_user == operator and added.workspace is None and added.target_id == str(key.pk)
    assert added.new["base_url"] == "https://res.openai.azure.com" and added.new["priority"] == 20
    assert "secret" not in json.dumps(added.new) and added.old is None

    form = provider_form(
        codex, name=key.name, secret="sk-rotated-provider-secret", deployment="dep-2", endpoint_type=key.endpoint_type
    )
    assert staff.post(reverse("admin:gateway_providerkey_change", args=[key.pk]), form).status_code == 302
    (updated,) = rows(action="provider_key.update")
    assert updated.old == {"deployment": "codex-mini", "secret_changed": False}
    assert updated.new == {"deployment": "dep-2", "secret_changed": True}
    text = stored_text()
    assert PROVIDER_SECRET not in text and "sk-rotated-provider-secret" not in text
    assert key.secret_encrypted not in text


def test_failover_order_and_enabling_in_the_list_are_audited(staff, operator, catalog):
    first, second = route(priority=10), route(priority=20)
    response = staff.post(changelist("gateway.providerkey"), listing_form((first, 30, True), (second, 20, False)))
    assert response.status_code == 302
    (reorder,) = rows(action="provider_key.reorder")
    assert (reorder.target_id, reorder.old, reorder.new) == (str(first.pk), {"priority": 10}, {"priority": 30})
    (disable,) = rows(action="provider_key.disable")
    assert (disable.target_id, disable.old, disable.new) == (str(second.pk), {"enabled": True}, {"enabled": False})
    assert reorder.actor_user == disable.actor_user == operator

    staff.post(changelist("gateway.providerkey"), {"action": "reenable_selected", "_selected_action": [second.pk]})
    (enable,) = rows(action="provider_key.enable")
    assert enable.new == {"enabled": True} and enable.actor_user == operator


def test_a_failed_audit_write_rolls_the_admin_change_back(staff, catalog, monkeypatch):
    first = route(priority=10)

    def broken(*args, **kwargs):
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(audit_services, "record", broken)
    with pytest.raises(RuntimeError):
        staff.post(changelist("gateway.providerkey"), listing_form((first, 30, True)))
    first.refresh_from_db()
    assert first.priority == 10


def test_a_change_the_admin_refuses_leaves_no_audit_row(staff, catalog):
    first = route(priority=10)
    before = AuditLog.objects.count()
    response = staff.post(changelist("gateway.providerkey"), listing_form((first, -5, True)))
    assert response.status_code == 200  # the form error, nothing saved
    first.refresh_from_db()
    assert first.priority == 10 and AuditLog.objects.count() == before


def test_deleting_a_provider_key_is_audited(staff, operator, catalog):
    key = route(name="gone")
    response = staff.post(reverse("admin:gateway_providerkey_delete", args=[key.pk]), {"post": "yes"})
    assert response.status_code == 302 and not ProviderKey.objects.exists()
    (deleted,) = rows(action="provider_key.delete")
    assert deleted.old["name"] == "gone" and deleted.new is None and deleted.target_id == str(key.pk)


def test_a_new_price_card_is_audited_as_operator_global(staff, operator, catalog):
    codex = Model.objects.get(slug="codex-mini")
    start = timezone.now() + timedelta(days=30)
    response = staff.post(
        reverse("admin:billing_pricecard_add"),
        {
            "model": codex.pk,
            "service_tier": "",
            "currency": "USD",
            "input_per_1m": "1.25",
            "cached_input_per_1m": "0.3",
            "cache_write_per_1m": "",
            "output_per_1m": "5",
            "effective_from_0": start.strftime("%Y-%m-%d"),
            "effective_from_1": start.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 302
    card = PriceCard.objects.get(model=codex, input_per_1m="1.25")
    (created,) = rows(action="price_card.create")
    assert created.workspace is None and created.actor_user == operator and created.target_id == str(card.pk)
    assert created.new["input_per_1m"] == "1.2500000000" and created.new["model"] == codex.pk


def test_a_price_card_added_on_the_models_page_is_audited_too(staff, operator, catalog):
    codex = Model.objects.get(slug="codex-mini")
    url = reverse("admin:billing_model_change", args=[codex.pk])
    form = staff.get(url).context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is True:
            data[name] = "on"
        elif value not in (None, False):
            data[name] = value
    start = timezone.now() + timedelta(days=30)
    existing = codex.price_cards.count()
    prefix = "price_cards"
    data.update(
        {
            f"{prefix}-TOTAL_FORMS": str(existing + 1),
            f"{prefix}-INITIAL_FORMS": str(existing),
            f"{prefix}-MIN_NUM_FORMS": "0",
            f"{prefix}-MAX_NUM_FORMS": "1000",
            **{f"{prefix}-{i}-id": str(card.pk) for i, card in enumerate(codex.price_cards.order_by("pk"))},
            **{f"{prefix}-{i}-model": str(codex.pk) for i in range(existing + 1)},
            f"{prefix}-{existing}-service_tier": "",
            f"{prefix}-{existing}-currency": "USD",
            f"{prefix}-{existing}-input_per_1m": "1.75",
            f"{prefix}-{existing}-cached_input_per_1m": "0.4",
            f"{prefix}-{existing}-cache_write_per_1m": "",
            f"{prefix}-{existing}-output_per_1m": "7",
            f"{prefix}-{existing}-effective_from_0": start.strftime("%Y-%m-%d"),
            f"{prefix}-{existing}-effective_from_1": start.strftime("%H:%M:%S"),
        }
    )
    response = staff.post(url, data)
    assert response.status_code == 302, response.context and response.context.get("errors")
    card = PriceCard.objects.get(model=codex, input_per_1m="1.75")
    (created,) = rows(action="price_card.create")
    assert created.workspace is None and created.actor_user == operator and created.target_id == str(card.pk)


def test_changing_an_api_key_in_the_admin_is_audited(staff, operator, world):
    change_url = reverse("admin:workspaces_apikey_change", args=[world.key.pk])
    form = {
        "name": "default",
        "expires_at_0": "",
        "expires_at_1": "",
        "allowed_models": "[]",
        "rpm_limit": "60",
        "tpm_limit": "",
        "budget_amount": "",
        "budget_period": "none",
    }
    response = staff.post(change_url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    (updated,) = rows(action="api_key.update")
    assert (updated.old, updated.new) == ({"rpm_limit": None}, {"rpm_limit": 60})
    assert updated.workspace == world.workspace and updated.actor_user == operator


def test_membership_changes_in_the_workspace_page_are_audited(staff, operator, world):
    membership = Membership.objects.get(workspace=world.workspace, user=world.member)
    owner = Membership.objects.get(workspace=world.workspace, user=world.owner)
    newcomer = get_user_model().objects.create_user("newcomer", "newcomer@example.com")
    ws = world.workspace
    form = {
        "name": ws.name,
        "slug": ws.slug,
        "currency": ws.currency,
        "budget_period": "none",
        "limits_fail_mode": "open",
        "memberships-TOTAL_FORMS": "3",
        "memberships-INITIAL_FORMS": "2",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-id": str(owner.pk),
        "memberships-0-workspace": str(ws.pk),
        "memberships-0-user": str(world.owner.pk),
        "memberships-0-role": "owner",
        "memberships-1-id": str(membership.pk),
        "memberships-1-workspace": str(ws.pk),
        "memberships-1-user": str(world.member.pk),
        "memberships-1-role": "finance",
        "memberships-2-workspace": str(ws.pk),
        "memberships-2-user": str(newcomer.pk),
        "memberships-2-role": "developer",
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
        "api_keys-MIN_NUM_FORMS": "0",
        "api_keys-MAX_NUM_FORMS": "1000",
    }
    form["budget_amount"] = "250"
    response = staff.post(reverse("admin:workspaces_workspace_change", args=[ws.pk]), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    (limits,) = rows(action="workspace.update", actor_user=operator)
    assert (limits.old, limits.new) == ({"budget_amount": None}, {"budget_amount": "250.000000"})
    assert limits.workspace == ws
    (changed,) = rows(action="member.role_change", actor_user=operator)
    assert (changed.old, changed.new, changed.target_label) == ({"role": "developer"}, {"role": "finance"}, "member")
    (added,) = rows(action="member.add", actor_user=operator)
    assert added.new == {"user": newcomer.pk, "role": "developer"}

    form["memberships-1-DELETE"] = "on"
    del form["memberships-2-user"], form["memberships-2-role"], form["memberships-2-workspace"]
    form["memberships-TOTAL_FORMS"] = "2"
    response = staff.post(reverse("admin:workspaces_workspace_change", args=[ws.pk]), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    (removed,) = rows(action="member.remove", actor_user=operator)
    assert removed.old == {"user": world.member.pk, "role": "finance"} and removed.target_id == str(membership.pk)


def test_operators_read_the_whole_audit_log_and_cannot_change_it(staff, world):
    page = staff.get(changelist("audit.auditlog"))
    assert page.status_code == 200 and "workspace.create" in page.content.decode()
    entry = AuditLog.objects.first()
    detail = staff.get(reverse("admin:audit_auditlog_change", args=[entry.pk]))
    assert detail.status_code == 200 and 'type="submit"' not in detail.content.decode().split("</form>")[-1]
    assert staff.get(reverse("admin:audit_auditlog_add")).status_code == 403
    assert staff.post(reverse("admin:audit_auditlog_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert AuditLog.objects.filter(pk=entry.pk).exists()
