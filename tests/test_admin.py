"""The operator admin over real HTTP: staff only, secrets shown once or never, history read-only."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import Model, PriceCard, UsageEvent
from gateway.models import ProviderKey
from gateway.services import provider_key_add
from workspaces.models import ApiKey
from workspaces.services import hash_api_key

pytestmark = pytest.mark.django_db

PROVIDER_SECRET = "sk-admin-form-secret-123456"


@pytest.fixture
def staff(db):
    user = get_user_model().objects.create_superuser("operator", "operator@example.com", None)
    client = Client()
    client.force_login(user)
    return client


def changelist(model_label: str) -> str:
    return reverse(f"admin:{model_label.replace('.', '_')}_changelist")


def route(**overrides) -> ProviderKey:
    values = {
        "model_slug": "codex-mini",
        "provider": "azure-openai",
        "base_url": "https://res.openai.azure.com",
        "api_key": PROVIDER_SECRET,
    }
    values.update(overrides)
    return provider_key_add(**values)


# --- who may enter ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/", "/admin/gateway/providerkey/", "/admin/workspaces/apikey/add/"])
def test_anonymous_is_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_non_staff_user_is_sent_to_login(world):
    client = Client()
    client.force_login(world.owner)  # owns a workspace, yet is not staff
    for path in ("/admin/", "/admin/workspaces/apikey/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize(
    "label",
    [
        "workspaces.workspace",
        "workspaces.apikey",
        "billing.model",
        "billing.pricecard",
        "billing.usageevent",
        "billing.ledgerentry",
        "billing.invoice",
        "gateway.providerkey",
    ],
)
def test_staff_sees_every_screen(staff, world, catalog, label):
    assert staff.get(changelist(label)).status_code == 200


@pytest.mark.parametrize(
    "label", ["workspaces.workspace", "workspaces.apikey", "billing.pricecard", "gateway.providerkey"]
)
def test_staff_can_open_the_add_forms(staff, catalog, label):
    assert staff.get(reverse(f"admin:{label.replace('.', '_')}_add")).status_code == 200


def test_money_trail_cannot_be_added_by_hand(staff):
    for label in ("billing.usageevent", "billing.ledgerentry", "billing.invoice"):
        assert staff.get(reverse(f"admin:{label.replace('.', '_')}_add")).status_code == 403


# --- API keys ---------------------------------------------------------------------------------------


def test_workspace_page_lists_keys_read_only_without_secrets(staff, world):
    page = staff.get(reverse("admin:workspaces_workspace_change", args=[world.workspace.pk])).content.decode()
    assert world.key.prefix in page
    assert world.secret not in page and world.key.key_hash not in page
    assert 'name="api_keys-0-name"' not in page  # the inline renders keys as text, not inputs


def add_key(staff, world, **extra):
    data = {"workspace": world.workspace.pk, "name": "from-admin", "scope": "inference", "budget_period": "none"}
    data.update(extra)
    return staff.post(reverse("admin:workspaces_apikey_add"), data)


def test_adding_a_key_shows_the_secret_once(staff, world):
    response = add_key(staff, world, allowed_models='["codex-mini"]')
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get(workspace=world.workspace, name="from-admin")
    page = response.content.decode()
    secret = page.split('id="omixa-new-key"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert secret.startswith("omx_live_") and hash_api_key(secret) == key.key_hash
    assert key.allowed_models == ["codex-mini"]
    for path in (
        reverse("admin:workspaces_apikey_change", args=[key.pk]),
        changelist("workspaces.apikey"),
        reverse("admin:workspaces_workspace_change", args=[world.workspace.pk]),
    ):
        later = staff.get(path).content.decode()
        assert secret not in later and key.key_hash not in later
    # Not parked in a flash message for a later page either.
    assert secret not in str(staff.cookies) and secret not in staff.get("/admin/").content.decode()


def test_adding_a_key_with_a_taken_name_is_a_form_error(staff, world):
    before = ApiKey.objects.count()
    response = add_key(staff, world, name="default")
    assert response.status_code == 200
    assert "already has an active key named" in response.content.decode()
    assert ApiKey.objects.count() == before


def test_revoke_selected_keys(staff, world):
    response = staff.post(
        changelist("workspaces.apikey"),
        {"action": "revoke_selected", "_selected_action": [world.key.pk]},
        follow=True,
    )
    assert "1 key revoked" in response.content.decode()
    assert ApiKey.objects.get(pk=world.key.pk).revoked_at is not None
    assert ApiKey.objects.get(pk=world.other_key.pk).revoked_at is None


# --- provider keys ------------------------------------------------------------------------------------


def provider_form(catalog_model: Model, **extra) -> dict:
    data = {
        "model": catalog_model.pk,
        "name": "",
        "provider": "azure-openai",
        "endpoint_type": "",
        "base_url": "https://res.openai.azure.com/openai/v1",
        "deployment": "",
        "api_version": "",
        "secret": PROVIDER_SECRET,
        "priority": "20",
        "enabled": "on",
    }
    data.update(extra)
    return data


def test_adding_a_provider_key_encrypts_the_write_only_secret(staff, catalog):
    codex = Model.objects.get(slug="codex-mini")
    response = staff.post(reverse("admin:gateway_providerkey_add"), provider_form(codex), follow=True)
    assert response.status_code == 200
    key = ProviderKey.objects.get()
    assert (key.name, key.endpoint_type, key.deployment) == ("azure-openai-1", "azure_openai_v1_chat", "codex-mini")
    assert key.base_url == "https://res.openai.azure.com" and key.priority == 20
    assert key.get_secret() == PROVIDER_SECRET
    page = staff.get(reverse("admin:gateway_providerkey_change", args=[key.pk])).content.decode()
    assert PROVIDER_SECRET not in page and key.secret_encrypted not in page
    assert 'type="password"' in page


def test_provider_key_add_requires_the_secret_and_a_fitting_endpoint_type(staff, catalog):
    codex = Model.objects.get(slug="codex-mini")
    missing = staff.post(reverse("admin:gateway_providerkey_add"), provider_form(codex, secret=""))
    assert missing.status_code == 200 and "This field is required" in missing.content.decode()
    misfit = staff.post(reverse("admin:gateway_providerkey_add"), provider_form(codex, endpoint_type="google_vertex"))
    assert "does not fit provider" in misfit.content.decode()
    bad_url = staff.post(reverse("admin:gateway_providerkey_add"), provider_form(codex, base_url="ftp://x.example"))
    assert bad_url.status_code == 200
    assert not ProviderKey.objects.exists()


def test_changing_a_provider_key_without_a_secret_keeps_it(staff, catalog):
    key = route(name="main")
    change_url = reverse("admin:gateway_providerkey_change", args=[key.pk])
    form = provider_form(Model.objects.get(slug="codex-mini"), name="main", secret="", priority="7")
    form["endpoint_type"] = "azure_openai_v1_responses"
    response = staff.post(change_url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    key.refresh_from_db()
    assert key.priority == 7 and key.endpoint_type == "azure_openai_v1_responses"
    assert key.get_secret() == PROVIDER_SECRET
    staff.post(change_url, {**form, "secret": "sk-new-one"})
    key.refresh_from_db()
    assert key.get_secret() == "sk-new-one"


def test_failover_order_and_enabled_are_editable_in_the_list(staff, catalog):
    first, second = route(priority=10), route(priority=20)
    response = staff.post(
        changelist("gateway.providerkey"),
        {
            "form-TOTAL_FORMS": "2",
            "form-INITIAL_FORMS": "2",
            "form-MIN_NUM_FORMS": "0",
            "form-MAX_NUM_FORMS": "1000",
            "form-0-id": str(first.pk),
            "form-0-priority": "30",
            "form-0-enabled": "on",
            "form-1-id": str(second.pk),
            "form-1-priority": "5",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.priority, first.enabled) == (30, True)
    assert (second.priority, second.enabled) == (5, False)
    assert first.get_secret() == second.get_secret() == PROVIDER_SECRET


def test_reenable_clears_the_disabled_reason(staff, catalog):
    key = route()
    ProviderKey.objects.filter(pk=key.pk).update(
        enabled=False, disabled_reason="upstream 401: key revoked", disabled_at=timezone.now()
    )
    listing = staff.get(changelist("gateway.providerkey")).content.decode()
    assert "upstream 401: key revoked" in listing
    staff.post(changelist("gateway.providerkey"), {"action": "reenable_selected", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.enabled and key.disabled_reason == "" and key.disabled_at is None


# --- prices and the money trail -----------------------------------------------------------------------


def test_existing_price_cards_are_read_only_and_new_ones_addable(staff, catalog):
    codex = Model.objects.get(slug="codex-mini")
    card = PriceCard.objects.get(model=codex)
    page = staff.get(reverse("admin:billing_model_change", args=[codex.pk])).content.decode()
    assert 'name="price_cards-0-input_per_1m"' not in page  # the stored card is text
    assert 'name="price_cards-__prefix__-input_per_1m"' in page  # a new card can be added
    assert staff.post(reverse("admin:billing_pricecard_change", args=[card.pk]), {}).status_code == 403

    def add_card(start):
        return staff.post(
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

    backdated = add_card(timezone.now() - timedelta(days=30))
    assert backdated.status_code == 200 and "cannot start in the past" in backdated.content.decode()
    assert add_card(timezone.now() + timedelta(days=30)).status_code == 302
    assert PriceCard.objects.filter(model=codex).count() == 2
    card.refresh_from_db()
    assert str(card.input_per_1m).startswith("1.5")


def test_usage_is_read_only_and_filterable_by_pricing_state(staff, world):
    for state in ("unpriced", "priced"):
        UsageEvent.objects.create(
            request_id=uuid.uuid4(),
            created_at=timezone.now(),
            workspace=world.workspace,
            model_slug=f"model-{state}",
            outcome="completed",
            http_status=200,
            pricing_state=state,
        )
    page = staff.get(changelist("billing.usageevent"), {"pricing_state": "unpriced"}).content.decode()
    assert "model-unpriced" in page and "model-priced" not in page
    assert staff.get(changelist("billing.usageevent"), {"outcome__exact": "completed"}).status_code == 200
    assert staff.get(changelist("billing.usageevent"), {"q": "not-a-request-id"}).status_code == 200
    assert staff.get(reverse("admin:billing_usageevent_add")).status_code == 403
    event = UsageEvent.objects.first()
    assert staff.post(reverse("admin:billing_usageevent_change", args=[event.pk]), {}).status_code == 403


def test_admin_is_branded_for_operators(staff):
    page = staff.get("/admin/").content.decode()
    assert "Omixa operations" in page
