"""The data model's promises: constraints the database enforces, and secrets never stored in clear."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from billing.models import Invoice, LedgerEntry, Model, PriceCard, UsageEvent
from gateway.crypto import SecretDecryptionError
from gateway.models import ProviderKey
from gateway.services import ProviderKeyError, normalize_base_url, provider_key_add, provider_secrets_rotate
from workspaces.models import ApiKey, Membership, Workspace
from workspaces.services import (
    DuplicateApiKeyName,
    WorkspaceError,
    api_key_issue,
    api_key_revoke,
    hash_api_key,
    workspace_create,
)

pytestmark = pytest.mark.django_db

PROVIDER_SECRET = "sk-provider-very-secret-0123456789"


def all_table_text() -> str:
    """Every column of every row of every table, as text: what a database dump would reveal."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT * FROM {quoted}")  # table names come from introspection
            for row in cursor.fetchall():
                chunks.extend(bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else str(v) for v in row)
    return "\n".join(chunks)


def usage_event(workspace: Workspace, **overrides) -> UsageEvent:
    values = {
        "request_id": uuid.uuid4(),
        "created_at": timezone.now(),
        "workspace": workspace,
        "model_slug": "codex-mini",
        "outcome": UsageEvent.Outcome.COMPLETED,
        "http_status": 200,
        "input_tokens": 10,
        "output_tokens": 5,
    }
    values.update(overrides)
    return UsageEvent.objects.create(**values)


# --- secrets at rest ---------------------------------------------------------------------------


def test_no_secret_is_stored_in_clear(world, catalog):
    key, secret = api_key_issue(workspace=world.workspace, name="dump-check")
    provider_key_add(
        model_slug="codex-mini",
        provider="azure-openai",
        base_url="https://res.openai.azure.com",
        api_key=PROVIDER_SECRET,
    )
    dump = all_table_text()
    # The random part alone must not appear either (e.g. stored without its omx_live_ prefix).
    assert secret not in dump and secret.removeprefix("omx_live_") not in dump
    assert world.secret not in dump
    assert PROVIDER_SECRET not in dump
    assert hash_api_key(secret) in dump  # the lookup hash is what is stored
    assert key.prefix == secret[:13]


def test_api_key_secret_format_and_hash(world):
    key, secret = api_key_issue(workspace=world.workspace, name="fmt")
    assert re.fullmatch(r"omx_live_[A-Za-z0-9_-]{40}", secret)
    assert key.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert key.prefix == secret[:13] and key.prefix.startswith("omx_live_")
    admin_key, admin_secret = api_key_issue(workspace=world.workspace, name="mgmt", scope="admin")
    assert re.fullmatch(r"omx_admin_[A-Za-z0-9_-]{40}", admin_secret)
    assert admin_key.scope == ApiKey.Scope.ADMIN
    assert admin_key.prefix == admin_secret[:13]


def test_provider_secret_round_trips_through_encryption(catalog):
    key = provider_key_add(
        model_slug="codex-mini", provider="openai", base_url="https://api.openai.com", api_key=PROVIDER_SECRET
    )
    stored = ProviderKey.objects.get(pk=key.pk)
    assert stored.secret_encrypted != PROVIDER_SECRET
    assert stored.get_secret() == PROVIDER_SECRET


def test_provider_secret_survives_key_rotation(catalog, settings):
    old = settings.OMIXA_ENCRYPTION_KEYS[0]
    key = provider_key_add(
        model_slug="codex-mini", provider="openai", base_url="https://api.openai.com", api_key=PROVIDER_SECRET
    )
    before = ProviderKey.objects.get(pk=key.pk).secret_encrypted
    new = Fernet.generate_key().decode()
    with override_settings(OMIXA_ENCRYPTION_KEYS=[new, old]):
        assert provider_secrets_rotate() == 1
        assert provider_secrets_rotate() == 1  # running twice is harmless
    rotated = ProviderKey.objects.get(pk=key.pk)
    assert rotated.secret_encrypted != before
    with override_settings(OMIXA_ENCRYPTION_KEYS=[new]):
        assert rotated.get_secret() == PROVIDER_SECRET
    with override_settings(OMIXA_ENCRYPTION_KEYS=[old]), pytest.raises(SecretDecryptionError):
        rotated.get_secret()


def test_rotation_is_all_or_nothing_when_a_secret_cannot_be_decrypted(catalog, settings):
    old = settings.OMIXA_ENCRYPTION_KEYS[0]
    good = provider_key_add(
        model_slug="codex-mini", provider="openai", base_url="https://api.openai.com", api_key=PROVIDER_SECRET
    )
    stray = Fernet(Fernet.generate_key()).encrypt(b"lost").decode()
    ProviderKey.objects.filter(pk=good.pk).update(secret_encrypted=stray)
    other = provider_key_add(
        model_slug="gpt-4.1-mini", provider="openai", base_url="https://api.openai.com", api_key=PROVIDER_SECRET
    )
    untouched = ProviderKey.objects.get(pk=other.pk).secret_encrypted
    with override_settings(OMIXA_ENCRYPTION_KEYS=[Fernet.generate_key().decode(), old]):
        with pytest.raises(ProviderKeyError, match=f"provider key {good.pk}"):
            provider_secrets_rotate()
    assert ProviderKey.objects.get(pk=other.pk).secret_encrypted == untouched


# --- services ----------------------------------------------------------------------------------


def test_workspace_slug_is_derived_and_made_unique(db):
    first = workspace_create(name="Acme Corp")
    second = workspace_create(name="Acme  corp!")
    assert (first.slug, second.slug) == ("acme-corp", "acme-corp-2")
    with pytest.raises(WorkspaceError, match="already taken"):
        workspace_create(name="Other", slug="acme-corp")
    with pytest.raises(WorkspaceError):
        workspace_create(name="!!!")


def test_workspace_owner_is_created_once_by_email(db):
    workspace = workspace_create(name="One", owner_email="Boss@Example.com")
    again = workspace_create(name="Two", owner_email="boss@example.com")
    owners = Membership.objects.filter(role="owner", workspace__in=[workspace, again])
    assert owners.count() == 2
    assert len({m.user_id for m in owners}) == 1


def test_bad_owner_email_creates_nothing(db):
    with pytest.raises(WorkspaceError, match="email"):
        workspace_create(name="Nope", owner_email="not-an-email")
    assert not Workspace.objects.exists()


def test_duplicate_active_key_name_is_a_domain_error_and_creates_nothing(world):
    count = ApiKey.objects.count()
    with pytest.raises(DuplicateApiKeyName, match="already has an active key named 'default'"):
        api_key_issue(workspace=world.workspace, name="default")
    assert ApiKey.objects.count() == count
    # The other workspace's key of the same name is no clash, and a revoked name is free again.
    api_key_revoke(api_key=world.key)
    api_key_issue(workspace=world.workspace, name="default")


def test_revoke_is_idempotent_and_keeps_the_first_time(world):
    first = api_key_revoke(api_key=world.key).revoked_at
    assert first is not None
    assert api_key_revoke(api_key=world.key, at=first + timedelta(days=1)).revoked_at == first
    assert not ApiKey.objects.get(pk=world.key.pk).is_active


def test_api_key_issue_refuses_bad_input(world):
    with pytest.raises(WorkspaceError, match="scope"):
        api_key_issue(workspace=world.workspace, name="x", scope="root")
    with pytest.raises(WorkspaceError, match="past"):
        api_key_issue(workspace=world.workspace, name="x", expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(WorkspaceError, match="empty"):
        api_key_issue(workspace=world.workspace, name="  ")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("https://res.openai.azure.com", "https://res.openai.azure.com"),
        ("https://res.openai.azure.com/", "https://res.openai.azure.com"),
        ("https://res.openai.azure.com/openai/v1/", "https://res.openai.azure.com"),
        ("https://api.openai.com/v1", "https://api.openai.com"),
        ("http://127.0.0.1:8000/simulator", "http://127.0.0.1:8000/simulator"),
        ("http://127.0.0.1:8000/simulator/openai/v1", "http://127.0.0.1:8000/simulator"),
    ],
)
def test_base_url_is_normalized_to_the_provider_root(typed, stored):
    assert normalize_base_url(typed) == stored


@pytest.mark.parametrize(
    "bad", ["ftp://example.com", "not a url", "", "https://user:pass@example.com", "https://example.com/?key=1"]
)
def test_bad_base_urls_are_refused(bad):
    with pytest.raises(ProviderKeyError):
        normalize_base_url(bad)


def test_provider_key_defaults(catalog):
    first = provider_key_add(
        model_slug="codex-mini", provider="azure-openai", base_url="https://a.example", api_key="s1"
    )
    second = provider_key_add(
        model_slug="codex-mini", provider="azure-openai", base_url="https://b.example", api_key="s2"
    )
    assert (first.name, second.name) == ("azure-openai-1", "azure-openai-2")
    assert first.endpoint_type == "azure_openai_v1_chat"
    assert first.deployment == "codex-mini"
    assert first.priority == 100 and first.enabled and not first.supports_priority
    vertex = provider_key_add(
        model_slug="gemini-2.5-flash",
        provider="google-vertex",
        base_url="https://aiplatform.googleapis.com",
        api_key="g",
    )
    assert vertex.endpoint_type == "google_vertex"


# --- constraints the database enforces ----------------------------------------------------------


def test_db_refuses_two_active_keys_with_one_name(world):
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.create(workspace=world.workspace, name="default", prefix="omx_live_xxxx", key_hash="a" * 64)
    # Revoked keys do not count.
    ApiKey.objects.create(
        workspace=world.workspace, name="default", prefix="omx_live_xxxx", key_hash="b" * 64, revoked_at=timezone.now()
    )


def test_db_refuses_a_key_hash_that_is_not_sha256_hex(world):
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.create(workspace=world.workspace, name="clear", prefix="omx_live_xxxx", key_hash="omx_live_x")


def test_db_refuses_reasoning_tokens_above_output_tokens(world):
    with pytest.raises(IntegrityError), transaction.atomic():
        usage_event(world.workspace, output_tokens=5, reasoning_tokens=6)
    usage_event(world.workspace, output_tokens=5, reasoning_tokens=5)


def test_db_refuses_a_second_ledger_entry_for_one_usage_event(world):
    event = usage_event(world.workspace)
    entry = {"workspace": world.workspace, "usage_event": event, "occurred_at": event.created_at, "amount": Decimal(1)}
    LedgerEntry.objects.create(**entry)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(**entry)


def test_db_refuses_a_usage_ledger_entry_without_its_event(world):
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(workspace=world.workspace, occurred_at=timezone.now(), amount=Decimal(1))


def test_db_refuses_a_second_invoice_for_one_workspace_period_and_currency(world):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    invoice = {"workspace": world.workspace, "period_start": start, "period_end": datetime(2026, 2, 1, tzinfo=UTC)}
    Invoice.objects.create(**invoice)
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(**invoice)
    Invoice.objects.create(**invoice, currency="EUR")  # another currency is another invoice


def test_db_refuses_a_finalized_invoice_without_a_number(world):
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(
            workspace=world.workspace,
            period_start=datetime(2026, 1, 1, tzinfo=UTC),
            period_end=datetime(2026, 2, 1, tzinfo=UTC),
            status=Invoice.Status.FINALIZED,
        )


def test_db_refuses_two_price_cards_with_one_start(catalog):
    card = PriceCard.objects.get(model__slug="codex-mini")
    with pytest.raises(IntegrityError), transaction.atomic():
        PriceCard.objects.create(
            model=card.model,
            effective_from=card.effective_from,
            input_per_1m=Decimal(9),
            cached_input_per_1m=Decimal(9),
            output_per_1m=Decimal(9),
        )


def test_db_refuses_negative_rates_and_bad_provider(catalog):
    model = Model.objects.get(slug="codex-mini")
    with pytest.raises(IntegrityError), transaction.atomic():
        PriceCard.objects.create(
            model=model,
            effective_from=timezone.now(),
            input_per_1m=Decimal(-1),
            cached_input_per_1m=Decimal(0),
            output_per_1m=Decimal(0),
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        ProviderKey.objects.create(
            model=model, name="x", provider="acme", endpoint_type="openai_chat", base_url="https://x.example"
        )


def test_db_refuses_two_provider_keys_with_one_name_per_model(catalog):
    provider_key_add(model_slug="codex-mini", provider="openai", base_url="https://a.example", api_key="s", name="main")
    with pytest.raises(ProviderKeyError, match="already has a provider key named 'main'"):
        provider_key_add(
            model_slug="codex-mini", provider="openai", base_url="https://a.example", api_key="s", name="main"
        )
    model = Model.objects.get(slug="codex-mini")
    with pytest.raises(IntegrityError), transaction.atomic():
        ProviderKey.objects.create(
            model=model, name="main", provider="openai", endpoint_type="openai_chat", base_url="https://b.example"
        )
